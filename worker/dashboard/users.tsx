import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { adminSchemas } from "../admin/schemas";
import { userStatuses } from "../db/schema";
import * as keys from "../services/keys";
import * as roles from "../services/roles";
import * as users from "../services/users";
import type { IssuedKeyView, KeyView } from "../services/keys";
import type { UserView } from "../services/users";
import { GatewayError } from "../errors";
import { fieldErrors, formAction, formOf, isFieldProblem, list, parseForm, str, uiActor, type DashboardContext, type DashboardEnv, type FormDraft } from "./forms";
import { Badge, BASE, Csrf, Field, FieldError, FilterSelect, invalid, Layout, PostButton, when } from "./layout";
import { resetMessages } from "./reset-notice";

const NOTICES: Record<string, string> = {
  created: "Proxy user created.",
  updated: "Proxy user updated.",
  disabled: "Proxy user disabled: all its keys are refused.",
  enabled: "Proxy user enabled.",
  deleted: "Proxy user deleted; its keys were revoked.",
  revoked: "Key revoked.",
  roles: "Roles updated.",
  limits: "Limit overrides saved.",
  "limits-cleared": "Limit overrides removed: the role and route defaults apply.",
};

const EXPIRY_CHOICES: Array<[string, string]> = [
  ["", "Never"],
  ["7", "In 7 days"],
  ["30", "In 30 days"],
  ["90", "In 90 days"],
  ["365", "In 1 year"],
];
const GRACE_CHOICES: Array<[string, string]> = [
  ["0", "Revoke old key now"],
  ["3600", "Old key works 1 hour"],
  ["86400", "Old key works 1 day"],
  ["604800", "Old key works 7 days"],
];

const userHref = (id: string) => `${BASE}/users/${encodeURIComponent(id)}`;
const messages = (c: DashboardContext) => (c.req.query("notice") === "limits-reset" ? resetMessages(c) : { notice: NOTICES[c.req.query("notice") ?? ""], error: c.req.query("error") });

export const usersPages = new Hono<DashboardEnv>();

/** A refused form of a user's page (roles, or issue-key), kept for the page that answers it (per request: nothing outlives the response). */
interface UserDraft extends FormDraft<{ roles?: string[]; name?: string; permissions?: string; expiresInDays?: string }> {
  form: "roles" | "key";
}
const drafts = new WeakMap<Request, UserDraft>();

/** What the create-user form holds: kept when the form is refused, so nothing typed is lost. */
interface NewUserValues {
  name: string;
  group: string;
  description: string;
  roles: string[];
}

usersPages.get("/users", async (c) => renderUsers(c, messages(c)));

/**
 * The proxy users page. The create form's handler answers with it directly when the input is
 * refused (`status` 400 or 409), with `draft` holding the typed values and each field's problem.
 */
async function renderUsers(c: DashboardContext, msg: { notice?: string | undefined; error?: string | undefined }, httpStatus: 200 | 400 | 409 = 200, draft?: FormDraft<NewUserValues>) {
  const { db } = c.var.services;
  const q = { search: c.req.query("search")?.trim() || undefined, group: c.req.query("group")?.trim() || undefined, status: c.req.query("status") || undefined };
  const status = userStatuses.find((s) => s === q.status);
  const cursor = c.req.query("cursor") || undefined;
  const [page, allRoles] = await Promise.all([users.listUsers(db, { limit: 50, cursor, search: q.search, group: q.group, status }), roles.allRoleChoices(db)]);
  const filterQs = new URLSearchParams(Object.entries({ search: q.search, group: q.group, status }).filter((e): e is [string, string] => !!e[1]));
  const csrf = c.var.session.csrfToken;
  const typed = draft?.values;
  const problem = (field: string) => draft?.errors.get(field);
  return c.html(
    <Layout title="Proxy users" nav="users" csrf={csrf} {...msg}>
      <form class="card row" method="get" action={`${BASE}/users`} role="search" aria-label="Filter proxy users">
        <Field id="f-search" label="Name contains">
          <input id="f-search" name="search" type="search" value={q.search ?? ""} />
        </Field>
        <Field id="f-group" label="Group">
          <input id="f-group" name="group" type="text" value={q.group ?? ""} />
        </Field>
        <FilterSelect id="f-status" label="Status" name="status" options={userStatuses} value={status} />
        <button type="submit">Filter</button>
        <a href={`${BASE}/users`}>Clear</a>
      </form>
      <UsersTable rows={page.data} csrf={csrf} />
      <div class="pager">
        {cursor ? <a href={`${BASE}/users?${filterQs}`}>First page</a> : null}
        {page.nextCursor ? <a href={`${BASE}/users?${filterQs}${filterQs.size ? "&" : ""}cursor=${encodeURIComponent(page.nextCursor)}`}>Next page →</a> : null}
      </div>
      <h2 id="create-user">Create a proxy user</h2>
      <form class="card" method="post" action={`${BASE}/users`} aria-labelledby="create-user">
        <Csrf token={csrf} />
        <div class="row">
          <Field id="u-name" label="Name (required)" error={problem("name")}>
            <input
              id="u-name"
              name="name"
              type="text"
              required
              pattern="[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}"
              title="1–64 characters: letters, digits, _ . @ : -"
              value={typed?.name ?? ""}
              {...invalid("u-name", problem("name"))}
            />
          </Field>
          <Field id="u-group" label="Group" error={problem("group")}>
            <input id="u-group" name="group" type="text" placeholder="internal" value={typed?.group ?? ""} {...invalid("u-group", problem("group"))} />
          </Field>
          <Field id="u-desc" label="Description" error={problem("description")}>
            <input id="u-desc" name="description" type="text" value={typed?.description ?? ""} {...invalid("u-desc", problem("description"))} />
          </Field>
        </div>
        {allRoles.length ? (
          <fieldset style="margin-top:10px" aria-describedby={problem("roles") ? "u-roles-error" : undefined}>
            <legend class="legend">Roles</legend>
            {allRoles.map((r) => (
              <label>
                <input type="checkbox" name="roles" value={r.name} checked={typed?.roles.includes(r.name)} /> {r.name}
              </label>
            ))}
            <FieldError id="u-roles" error={problem("roles")} />
          </fieldset>
        ) : (
          <p class="muted">
            No roles yet: <a href={`${BASE}/roles`}>create one</a> to grant permissions.
          </p>
        )}
        <p>
          <button type="submit">Create user</button>
        </p>
      </form>
    </Layout>,
    httpStatus,
  );
}

const UsersTable = ({ rows, csrf }: { rows: UserView[]; csrf: string }) =>
  rows.length === 0 ? (
    <p class="card muted">No proxy users match.</p>
  ) : (
    <table aria-label="Proxy users">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Group</th>
          <th scope="col">Status</th>
          <th scope="col">Roles</th>
          <th scope="col">Created</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((u) => (
          <tr>
            <td>
              <a href={userHref(u.id)}>{u.name}</a>
            </td>
            <td>{u.group ?? "—"}</td>
            <td>
              <Badge status={u.status} />
            </td>
            <td>{u.roles.join(", ") || "—"}</td>
            <td>{when(u.createdAt)}</td>
            <td>
              <PostButton
                action={`${userHref(u.id)}/status`}
                csrf={csrf}
                fields={{ status: u.status === "active" ? "disabled" : "active", back: "list" }}
                label={u.status === "active" ? "Disable" : "Enable"}
                class="small secondary"
                ariaLabel={`${u.status === "active" ? "Disable" : "Enable"} ${u.name}`}
              />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );

usersPages.post("/users", async (c) => {
  const f = await formOf(c);
  const values: NewUserValues = { name: str(f.name), group: str(f.group), description: str(f.description), roles: list(f.roles) };
  try {
    // The admin API's body schema: the same name, group and role-name rules as POST /admin/v1/users.
    const input = parseForm(adminSchemas().userCreateSchema, { name: values.name, group: values.group || null, description: values.description || null, roles: values.roles });
    const user = await users.createUser(c.var.services.db, uiActor(c), input);
    return c.redirect(`${userHref(user.id)}?notice=created`, 303);
  } catch (err) {
    // Bad input or a taken name: the page itself (400 / 409), what was typed kept, each problem beside its field.
    if (isFieldProblem(err)) {
      return renderUsers(c, { error: `The proxy user was not created. ${err.detail}` }, err.status as 400 | 409, { values, errors: fieldErrors(err, { conflictField: "name" }) });
    }
    return formAction(c, `${BASE}/users`, () => Promise.reject(err));
  }
});

usersPages.post("/users/:id/status", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const status = str(f.status) === "disabled" ? "disabled" : "active";
  const back = str(f.back) === "list" ? `${BASE}/users` : userHref(id);
  return formAction(c, back, async () => {
    await users.updateUser(c.var.services.db, uiActor(c), id, { status });
    return `${back}?notice=${status === "disabled" ? "disabled" : "enabled"}`;
  });
});

usersPages.post("/users/:id/roles", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const roles = list(f.roles);
  try {
    // The admin API's PATCH schema, as for PATCH /admin/v1/users/{id} with `roles`.
    await users.updateUser(c.var.services.db, uiActor(c), id, parseForm(adminSchemas().userPatchSchema, { roles }));
    return c.redirect(`${userHref(id)}?notice=roles`, 303);
  } catch (err) {
    if (isFieldProblem(err)) {
      drafts.set(c.req.raw, { form: "roles", values: { roles }, errors: fieldErrors(err) });
      return renderUser(c, id, { error: `The roles were not saved. ${err.detail}` }, err.status as 400 | 409);
    }
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

usersPages.post("/users/:id/delete", async (c) => {
  const id = c.req.param("id");
  return formAction(c, userHref(id), async () => {
    await users.deleteUser(c.var.services.db, uiActor(c), id);
    return `${BASE}/users?notice=deleted`;
  });
});

usersPages.get("/users/:id", async (c) => renderUser(c, c.req.param("id"), messages(c)));

// Issuing and rotating answer with the page itself (no redirect), so the new key exists only in
// this one no-store response body — never in a URL, a cookie or anything the server keeps.
usersPages.post("/users/:id/keys", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const values = { name: str(f.name), permissions: str(f.permissions), expiresInDays: str(f.expiresInDays) };
  const days = Number(values.expiresInDays);
  const perms = values.permissions.split(/[\s,]+/).filter(Boolean);
  try {
    // The admin API's body schema, as for POST /admin/v1/users/{id}/keys: label length, permission strings.
    const input = parseForm(adminSchemas().keyCreateSchema, {
      name: values.name || null,
      permissions: perms.length ? perms : null,
      expiresAt: days > 0 ? new Date(Date.now() + days * 86_400_000).toISOString() : null,
    });
    const issued = await keys.issueKey(c.var.services.db, uiActor(c), id, input);
    return renderUser(c, id, { issued, notice: "Key issued." });
  } catch (err) {
    if (isFieldProblem(err)) {
      // A bad permission is quoted: the field holds a list (`permissions.2` is the third string typed).
      const describe = (path: string, message: string) => (/^permissions\.\d+$/.test(path) ? `"${perms[Number(path.slice(12))]}": ${message}` : message);
      drafts.set(c.req.raw, { form: "key", values, errors: fieldErrors(err, { describe }) });
      return renderUser(c, id, { error: `The key was not issued. ${err.detail}` }, err.status as 400 | 409);
    }
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

usersPages.post("/users/:id/keys/:keyId/rotate", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const grace = Math.max(0, Math.min(30 * 86400, Number(str(f.gracePeriodSeconds)) || 0));
  try {
    const issued = await keys.rotateKey(c.var.services.db, uiActor(c), await ownKey(c, id, c.req.param("keyId")), grace);
    return renderUser(c, id, { issued, notice: grace ? `Key rotated; the old key keeps working for ${grace / 3600} hour(s).` : "Key rotated; the old key is revoked." });
  } catch (err) {
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

usersPages.post("/users/:id/keys/:keyId/revoke", async (c) => {
  const id = c.req.param("id");
  return formAction(c, userHref(id), async () => {
    await keys.revokeKey(c.var.services.db, uiActor(c), await ownKey(c, id, c.req.param("keyId")));
    return `${userHref(id)}?notice=revoked`;
  });
});

/** The key id, after checking it belongs to the user in the URL (a form can't act across users). */
async function ownKey(c: DashboardContext, userId: string, keyId: string): Promise<string> {
  const k = await keys.getKey(c.var.services.db, keyId);
  if (k.userId !== userId) throw new GatewayError("KEY_NOT_FOUND", `No key "${keyId}" on this user.`);
  return k.id;
}

/**
 * The user page. Handlers that answer with the page itself (a new key, a form with errors) call
 * it directly; `status` is the response status (e.g. 400 for a form that did not validate).
 */
export async function renderUser(c: DashboardContext, id: string, msg: { notice?: string | undefined; error?: string | undefined; issued?: IssuedKeyView }, status: 200 | 400 | 409 = 200) {
  const { db } = c.var.services;
  let user: UserView;
  try {
    user = await users.getUser(db, id);
  } catch {
    return c.html(
      <Layout title="Proxy user not found" nav="users" csrf={c.var.session.csrfToken}>
        <p>
          No proxy user with id <code>{id}</code>. <a href={`${BASE}/users`}>Back to proxy users</a>
        </p>
      </Layout>,
      404,
    );
  }
  // Keys page by `?keys=<cursor>` (oldest first, 100 a page): a rotation's successor is newest.
  const keysCursor = c.req.query("keys") || undefined;
  const [userKeys, allRoles] = await Promise.all([keys.listKeys(db, id, { limit: 100, cursor: keysCursor }), roles.allRoleChoices(db)]);
  const csrf = c.var.session.csrfToken;
  const extras = await Promise.all(userSections.map((s) => s(c, user)));
  const draft = drafts.get(c.req.raw);
  const rolesError = draft?.form === "roles" ? draft.errors.get("roles") : undefined;
  const held = (draft?.form === "roles" && draft.values.roles) || user.roles;
  const typed = draft?.form === "key" ? draft.values : undefined;
  const keyProblem = (field: string) => (typed ? draft!.errors.get(field) : undefined);
  // Saving the form replaces the user's whole role set, so every role it holds gets a box, listed or not.
  const listed = new Set(allRoles.map((r) => r.name));
  const unlisted = [...new Set([...user.roles, ...held])].filter((n) => !listed.has(n));
  return c.html(
    <Layout title={user.name} nav="users" csrf={csrf} notice={msg.notice} error={msg.error}>
      <p>
        <a href={`${BASE}/users`}>← All proxy users</a>
      </p>
      {msg.issued ? <NewKey issued={msg.issued} /> : null}
      <section class="card" aria-label="Details">
        <dl class="props">
          <dt>Id</dt>
          <dd>
            <code>{user.id}</code>
          </dd>
          <dt>Status</dt>
          <dd>
            <Badge status={user.status} />
          </dd>
          <dt>Group</dt>
          <dd>{user.group ?? "—"}</dd>
          <dt>Description</dt>
          <dd>{user.description ?? "—"}</dd>
          <dt>Expires</dt>
          <dd>{when(user.expiresAt)}</dd>
          <dt>Allowed IPs</dt>
          <dd>{user.allowedIps?.join(", ") ?? "any"}</dd>
          <dt>Created</dt>
          <dd>{when(user.createdAt)}</dd>
        </dl>
        <div class="row" style="margin-top:12px">
          <PostButton action={`${userHref(id)}/status`} csrf={csrf} fields={{ status: user.status === "active" ? "disabled" : "active" }} label={user.status === "active" ? "Disable user" : "Enable user"} class="secondary" />
          <PostButton action={`${userHref(id)}/delete`} csrf={csrf} label="Delete user" class="danger" confirm={`Delete ${user.name} and revoke all its keys?`} />
        </div>
      </section>

      <h2 id="roles">Roles</h2>
      <form class="card" method="post" action={`${userHref(id)}/roles`} aria-labelledby="roles">
        <Csrf token={csrf} />
        {allRoles.length + unlisted.length ? (
          <fieldset aria-describedby={rolesError ? "user-roles-error" : undefined}>
            <legend class="legend">Roles held</legend>
            {allRoles.map((r) => (
              <label>
                <input type="checkbox" name="roles" value={r.name} checked={held.includes(r.name)} /> {r.name} <span class="muted mono">({r.permissions.join(", ")})</span>
              </label>
            ))}
            {unlisted.map((n) => (
              <label>
                <input type="checkbox" name="roles" value={n} checked={held.includes(n)} /> {n}
              </label>
            ))}
            <FieldError id="user-roles" error={rolesError} />
          </fieldset>
        ) : (
          <p class="muted">No roles exist yet.</p>
        )}
        <p>
          <button type="submit">Save roles</button>
        </p>
      </form>

      <h2 id="keys">Keys</h2>
      <KeysTable rows={userKeys.data} userId={id} csrf={csrf} />
      <div class="pager">
        {keysCursor ? <a href={`${userHref(id)}#keys`}>First keys</a> : null}
        {userKeys.nextCursor ? <a href={`${userHref(id)}?keys=${encodeURIComponent(userKeys.nextCursor)}#keys`}>More keys →</a> : null}
      </div>
      <h3 id="issue-key">Issue a key</h3>
      <form class="card row" method="post" action={`${userHref(id)}/keys`} aria-labelledby="issue-key">
        <Csrf token={csrf} />
        <Field id="k-name" label="Label" error={keyProblem("name")}>
          <input id="k-name" name="name" type="text" placeholder="ci-deploy" maxlength={100} value={typed?.name ?? ""} {...invalid("k-name", keyProblem("name"))} />
        </Field>
        <Field id="k-exp" label="Expires" error={keyProblem("expiresAt")}>
          <select id="k-exp" name="expiresInDays">
            {EXPIRY_CHOICES.map(([v, l]) => (
              <option value={v} selected={typed?.expiresInDays === v}>
                {l}
              </option>
            ))}
          </select>
        </Field>
        <Field id="k-perms" label="Narrow to permissions (optional)" error={keyProblem("permissions")}>
          <input id="k-perms" name="permissions" type="text" placeholder="orders:read, orders:list" value={typed?.permissions ?? ""} {...invalid("k-perms", keyProblem("permissions"))} />
        </Field>
        <button type="submit">Issue key</button>
      </form>
      {extras}
    </Layout>,
    status,
  );
}

/** Extra sections on the user page (limits, usage…) registered by features that exist. */
export const userSections: Array<(c: DashboardContext, user: UserView) => Promise<Child>> = [];

const NewKey = ({ issued }: { issued: IssuedKeyView }) => (
  <section class="card newkey" aria-labelledby="new-key-title">
    <h2 id="new-key-title">
      New key — copy it now
    </h2>
    <p>This is the only time the key is shown. The gateway keeps only its hash.</p>
    <div class="row">
      <Field id="new-key" label={`Key ${issued.id}`}>
        <input id="new-key" type="text" readonly value={issued.key} autocomplete="off" spellcheck={false} />
      </Field>
      <button type="button" data-copy="new-key">
        Copy
      </button>
      <span id="new-key-status" role="status" class="muted"></span>
    </div>
  </section>
);

// A rotated key (its successor may be on another page) is in its grace period: it may be revoked, not rotated again (409 KEY_ALREADY_ROTATED).
const KeysTable = ({ rows, userId, csrf }: { rows: KeyView[]; userId: string; csrf: string }) =>
  rows.length === 0 ? (
    <p class="card muted">No keys yet.</p>
  ) : (
    <table aria-label="Keys">
      <thead>
        <tr>
          <th scope="col">Start</th>
          <th scope="col">Label</th>
          <th scope="col">Status</th>
          <th scope="col">Permissions</th>
          <th scope="col">Last used</th>
          <th scope="col">Expires</th>
          <th scope="col">Created</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((k) => (
          <tr>
            <td>
              <code>{k.start}…</code>
            </td>
            <td>{k.name ?? "—"}</td>
            <td>
              <Badge status={k.status} />
              {k.status === "active" && k.rotatedTo ? <span class="muted"> (rotated)</span> : null}
            </td>
            <td class="mono">{k.permissions?.join(", ") ?? "all of the user's"}</td>
            <td>{when(k.lastUsedAt)}</td>
            <td>{when(k.expiresAt)}</td>
            <td>{when(k.createdAt)}</td>
            <td>
              {k.status === "active" ? (
                <div class="row">
                  {k.rotatedTo ? null : (
                    <form method="post" action={`${userHref(userId)}/keys/${k.id}/rotate`}>
                      <Csrf token={csrf} />
                      <label class="skip" for={`grace-${k.id}`}>
                        Grace period for {k.start}
                      </label>
                      <select id={`grace-${k.id}`} name="gracePeriodSeconds" aria-label={`Grace period when rotating ${k.start}`}>
                        {GRACE_CHOICES.map(([v, l]) => (
                          <option value={v}>{l}</option>
                        ))}
                      </select>{" "}
                      <button type="submit" class="small secondary" aria-label={`Rotate key ${k.start}`}>
                        Rotate
                      </button>
                    </form>
                  )}
                  <PostButton action={`${userHref(userId)}/keys/${k.id}/revoke`} csrf={csrf} label="Revoke" class="small danger" confirm={`Revoke key ${k.start}…? Clients using it get 401 at once.`} ariaLabel={`Revoke key ${k.start}`} />
                </div>
              ) : (
                <span class="muted">—</span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
