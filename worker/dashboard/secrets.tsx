import { Hono } from "hono";
import * as secrets from "../services/secrets";
import { formAction, formOf, str, uiActor, type DashboardContext, type DashboardEnv } from "./forms";
import { addNav, BASE, Layout, PostButton, when } from "./layout";

addNav({ id: "secrets", href: `${BASE}/secrets`, label: "Secrets" });

/**
 * Origin secrets: names, bindings and versions. Values are write-only in the admin API and never
 * reach a page; set or rotate them with `portcullis secrets set` (stdin or a file). While a
 * SECRETS_KEY rotation is under way the page offers the rekey, one page of secrets per click.
 */
export const secretsPages = new Hono<DashboardEnv>();

const REKEY = `${BASE}/secrets/rekey`;

/** What the last rekey page did, from the redirect's query (counts and names only). */
function rekeyMessages(c: DashboardContext): { notice?: string; error?: string; next?: string } {
  if (c.req.query("notice") !== "rekeyed") return { error: c.req.query("error") };
  const n = (k: string) => Number(/^\d{1,9}$/.exec(c.req.query(k) ?? "")?.[0] ?? 0);
  const stray = c.req.queries("undecryptable") ?? [];
  const next = c.req.query("next") || undefined;
  return {
    notice: `Re-encrypted ${n("rekeyed")} of ${n("total")} secret(s) on this page; ${n("current")} already under SECRETS_KEY.${next ? " Continue with the next page." : " That was the last page."}`,
    ...(stray.length ? { error: `Open with neither key, left as they are (set their values again): ${stray.join(", ")}.` } : {}),
    ...(next ? { next } : {}),
  };
}

secretsPages.get("/secrets", async (c) => {
  const cursor = c.req.query("cursor") || undefined;
  const page = await secrets.listSecrets(c.var.services.db, { limit: 100, cursor });
  const csrf = c.var.session.csrfToken;
  const msg = rekeyMessages(c);
  return c.html(
    <Layout title="Origin secrets" nav="secrets" csrf={csrf} notice={msg.notice} error={msg.error}>
      <p class="muted">
        Credentials the gateway injects towards origins. Values are write-only and never shown: set or rotate one with <code>portcullis secrets set NAME &lt; file</code>.
      </p>
      {c.var.services.env.SECRETS_KEY_PREVIOUS ? (
        <div class="card">
          <p>
            A <code>SECRETS_KEY</code> rotation is under way (<code>SECRETS_KEY_PREVIOUS</code> is set). Re-encrypt the store under the new key, {secrets.REKEY_PAGE.default} secrets per step;
            once a pass from the start re-encrypts nothing and finds nothing undecryptable, remove <code>SECRETS_KEY_PREVIOUS</code>.
          </p>
          <PostButton action={REKEY} csrf={csrf} fields={msg.next ? { cursor: msg.next } : {}} label={msg.next ? "Re-encrypt the next page" : "Re-encrypt from the start"} />
        </div>
      ) : null}
      {page.data.length === 0 ? (
        <p class="card muted">No secrets stored.</p>
      ) : (
        <table aria-label="Origin secrets">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Scope</th>
              <th scope="col">Bound to</th>
              <th scope="col">Version</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((s) => (
              <tr>
                <td class="mono">{s.name}</td>
                <td>{s.scope}</td>
                <td>{s.userId ? <a href={`${BASE}/users/${s.userId}`}>{s.userId}</a> : s.group ? `group ${s.group}` : "all users"}</td>
                <td>{s.version}</td>
                <td>{when(s.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.nextCursor ? (
        <p class="pager">
          <a href={`${BASE}/secrets?cursor=${encodeURIComponent(page.nextCursor)}`}>Next page →</a>
        </p>
      ) : null}
    </Layout>,
  );
});

secretsPages.post("/secrets/rekey", async (c) => {
  const cursor = str((await formOf(c)).cursor) || undefined;
  return formAction(c, `${BASE}/secrets`, async () => {
    const r = await secrets.rekeySecrets(c.var.services.db, c.var.services.env, uiActor(c), { limit: secrets.REKEY_PAGE.default, cursor });
    const q = new URLSearchParams({ notice: "rekeyed", rekeyed: String(r.rekeyed), total: String(r.total), current: String(r.alreadyCurrent) });
    for (const u of r.undecryptable) q.append("undecryptable", u.name);
    if (r.nextCursor) q.set("next", r.nextCursor);
    return `${BASE}/secrets?${q}`;
  });
});
