import { Hono, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { csrf as originCheck } from "hono/csrf";
import { secureHeaders } from "hono/secure-headers";
import { dbFor } from "../db";
import { validateEnv, type Env } from "../env";
import { GatewayError } from "../errors";
import { purgeKeyCacheOnMutation, sealAdminAuditOnMutation, whichAdminToken } from "../admin/auth";
import { uiActor, type DashboardEnv } from "./forms";
import { BASE, Field, Layout } from "./layout";
import { constantTimeEqual, endSession, pruneSessions, resolveSession, SESSION_TTL_MS, startSession } from "./session";
import { pruneSignInFailures, releaseSignInAttempt, reserveSignInAttempt, signInThrottleOptions } from "../services/sign-in-throttle";
// Order matters: each feature adds its section to the user page as it loads (limits, then usage).
import { limitsPages } from "./limits";
import { auditPages } from "./audit";
import { rolesPages } from "./roles";
import { secretsPages } from "./secrets";
import { usersPages } from "./users";

const COOKIE = "portcullis_session";

/** Browsers on this machine talk plain HTTP to `wrangler dev`; everywhere else the cookie is Secure. */
const isLocalDev = (url: string) => ["localhost", "127.0.0.1", "[::1]"].includes(new URL(url).hostname);

/** Signed in or sent to the sign-in page; every POST must also carry the session's CSRF token. */
const requireSession = (): MiddlewareHandler<DashboardEnv> =>
  async function requireSession(c, next) {
    const session = await resolveSession(c.var.services.db, c.var.services.env.ADMIN_TOKEN, getCookie(c, COOKIE));
    if (!session) return c.redirect(`${BASE}/login`, 303);
    if (c.req.method === "POST") {
      // `all: true` here too: Hono caches the first parse, and checkbox groups need arrays.
      const form = await c.req.parseBody({ all: true });
      const sent = typeof form["_csrf"] === "string" ? form["_csrf"] : "";
      if (!constantTimeEqual(sent, session.csrfToken)) throw new GatewayError("FORBIDDEN", "The form's CSRF token is missing or does not match this session. Reload the page and try again.");
    }
    c.set("session", session);
    await next();
  };

const noStore = (): MiddlewareHandler =>
  async function noStore(c, next) {
    await next();
    // Pages can show a newly issued key: never cache them, anywhere.
    c.res.headers.set("cache-control", "no-store");
  };

/**
 * The admin dashboard, mounted at /admin/ui: server-rendered Hono JSX, no CDN, no client build.
 * Its stylesheet and script are static files (public/admin/ui/assets/) that Cloudflare's asset
 * layer serves before the Worker runs (wrangler.toml [assets]); the pages link to them.
 * Sign-in exchanges the admin token for a signed session cookie (see ./session.ts); every form
 * carries a per-session CSRF token and must come from the same origin.
 *
 * @example app.route("/admin/ui", createDashboard());
 */
export function createDashboard() {
  const ui = new Hono<DashboardEnv>();
  ui.use(
    "*",
    noStore(),
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        scriptSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      referrerPolicy: "no-referrer",
    }),
    // Origin / Sec-Fetch-Site check on every form POST, sign-in included (login CSRF).
    originCheck(),
  );

  ui.get("/login", async (c) => {
    if (await resolveSession(c.var.services.db, c.var.services.env.ADMIN_TOKEN, getCookie(c, COOKIE))) return c.redirect(`${BASE}/users`, 303);
    return c.html(<SignIn />);
  });

  // Sealed like every other mutation: a sign-in writes a session row and its admin audit event.
  ui.post("/login", sealAdminAuditOnMutation(), async (c) => {
    const { db, env } = c.var.services;
    const form = await c.req.parseBody();
    const token = typeof form["token"] === "string" ? form["token"] : "";
    // The attempt takes a slot before the token is looked at (see worker/services/sign-in-throttle.ts); a
    // throttled address gets 429 whatever it sent, so the answer says nothing about the token.
    const slot = await reserveSignInAttempt(db, c.var.clientIp, signInThrottleOptions(env));
    if (!slot.allowed) {
      console.warn(JSON.stringify({ level: "warn", msg: "dashboard sign-in throttled", requestId: c.var.requestId, client: slot.client, retryAfterSeconds: slot.retryAfterSeconds }));
      const minutes = Math.ceil(slot.retryAfterSeconds / 60);
      c.header("retry-after", String(slot.retryAfterSeconds));
      return c.html(<SignIn error={`Too many failed sign-ins from your network address. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`} />, 429);
    }
    const which = token ? await whichAdminToken(token, env) : null;
    if (!which) {
      // Someone may be guessing: say so where operators look (never what was sent).
      console.warn(JSON.stringify({ level: "warn", msg: "dashboard sign-in failed", requestId: c.var.requestId, client: slot.client }));
      return c.html(<SignIn error="That is not the admin token." />, 401);
    }
    await releaseSignInAttempt(db, slot);
    if (which === "admin-token-previous") console.warn(JSON.stringify({ level: "warn", msg: "admin token previous used", requestId: c.var.requestId, client: slot.client }));
    const { cookie } = await startSession(db, { actor: "admin-ui", requestId: c.var.requestId }, env.ADMIN_TOKEN, c.var.clientIp);
    setCookie(c, COOKIE, cookie, { path: BASE, httpOnly: true, secure: !isLocalDev(c.req.url), sameSite: "Strict", maxAge: SESSION_TTL_MS / 1000 });
    return c.redirect(`${BASE}/users`, 303);
  });

  // Same rules as the admin API: a change made here is in force at once in this isolate, and
  // its admin audit row is sealed into the hash chain before the response goes out.
  ui.use("*", requireSession(), purgeKeyCacheOnMutation(), sealAdminAuditOnMutation());
  // Sign-out ends the session server-side (its row is deleted), so a copy of the cookie is dead too.
  ui.post("/logout", async (c) => {
    await endSession(c.var.services.db, uiActor(c), c.var.session);
    deleteCookie(c, COOKIE, { path: BASE, secure: !isLocalDev(c.req.url), httpOnly: true, sameSite: "Strict" });
    return c.redirect(`${BASE}/login`, 303);
  });
  ui.get("/", (c) => c.redirect(`${BASE}/users`, 303));
  ui.route("/", usersPages);
  ui.route("/", limitsPages);
  ui.route("/", rolesPages);
  ui.route("/", secretsPages);
  ui.route("/", auditPages);
  return ui;
}

/**
 * The dashboard's share of the hourly cron: deletes expired session rows and sign-in throttle
 * rows whose window has passed (both are dead weight by then; nothing reads them).
 */
export async function dashboardScheduled(controller: Pick<ScheduledController, "scheduledTime">, env: Env): Promise<void> {
  const cfg = validateEnv(env);
  const db = dbFor(env.DB);
  const now = controller.scheduledTime;
  const sessions = await pruneSessions(db, now);
  const throttle = await pruneSignInFailures(db, signInThrottleOptions(cfg), now);
  console.log(JSON.stringify({ level: "info", msg: "dashboard maintenance", expiredSessions: sessions, expiredSignInWindows: throttle }));
}

const SignIn = ({ error }: { error?: string }) => (
  <Layout title="Sign in" error={error}>
    <form class="card signin" method="post" action={`${BASE}/login`}>
      <p class="muted">Sign in with the gateway's admin token (the ADMIN_TOKEN secret). It is exchanged for a session cookie and never stored in the page.</p>
      <Field id="token" label="Admin token">
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
      </Field>
      <p>
        <button type="submit">Sign in</button>
      </p>
    </form>
  </Layout>
);
