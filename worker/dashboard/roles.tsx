import { Hono } from "hono";
import * as roles from "../services/roles";
import { formAction, formOf, str, uiActor, type DashboardEnv } from "./forms";
import { BASE, Csrf, Field, Layout, PostButton, when } from "./layout";

const NOTICES: Record<string, string> = { created: "Role created.", updated: "Role updated.", deleted: "Role deleted and removed from every user." };
const perms = (text: string) => text.split(/[\s,]+/).filter(Boolean);

export const rolesPages = new Hono<DashboardEnv>();

rolesPages.get("/roles", async (c) => {
  const cursor = c.req.query("cursor") || undefined;
  const page = await roles.listRoles(c.var.services.db, { limit: 100, cursor });
  const csrf = c.var.session.csrfToken;
  return c.html(
    <Layout title="Roles" nav="roles" csrf={csrf} notice={NOTICES[c.req.query("notice") ?? ""]} error={c.req.query("error")}>
      <p class="muted">A role is a named set of permission strings; <code>*</code> matches any run of characters. Changes reach every holder's keys within the key cache TTL.</p>
      {page.data.length === 0 ? (
        <p class="card muted">No roles yet.</p>
      ) : (
        <table aria-label="Roles">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Description</th>
              <th scope="col">Permissions</th>
              <th scope="col">Updated</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((r) => (
              <tr>
                <td>
                  <strong>{r.name}</strong>
                </td>
                <td>{r.description ?? "—"}</td>
                <td>
                  <form method="post" action={`${BASE}/roles/${r.id}`} class="row">
                    <Csrf token={csrf} />
                    <label class="skip" for={`perms-${r.id}`}>
                      Permissions of {r.name}
                    </label>
                    <input id={`perms-${r.id}`} class="mono" name="permissions" type="text" size={40} value={r.permissions.join(", ")} />
                    <button type="submit" class="small secondary" aria-label={`Save permissions of ${r.name}`}>
                      Save
                    </button>
                  </form>
                </td>
                <td>{when(r.updatedAt)}</td>
                <td>
                  <PostButton action={`${BASE}/roles/${r.id}/delete`} csrf={csrf} label="Delete" class="small danger" confirm={`Delete role ${r.name}? Every user holding it loses its permissions.`} ariaLabel={`Delete role ${r.name}`} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.nextCursor ? (
        <p class="pager">
          <a href={`${BASE}/roles?cursor=${encodeURIComponent(page.nextCursor)}`}>Next page →</a>
        </p>
      ) : null}
      <h2 id="create-role">Create a role</h2>
      <form class="card row" method="post" action={`${BASE}/roles`} aria-labelledby="create-role">
        <Csrf token={csrf} />
        <Field id="r-name" label="Name (required)">
          <input id="r-name" name="name" type="text" required />
        </Field>
        <Field id="r-desc" label="Description">
          <input id="r-desc" name="description" type="text" />
        </Field>
        <Field id="r-perms" label="Permissions (comma or space separated)">
          <input id="r-perms" name="permissions" type="text" class="mono" size={40} placeholder="orders:read, orders:*" />
        </Field>
        <button type="submit">Create role</button>
      </form>
    </Layout>,
  );
});

rolesPages.post("/roles", async (c) => {
  const f = await formOf(c);
  return formAction(c, `${BASE}/roles`, async () => {
    await roles.createRole(c.var.services.db, uiActor(c), { name: str(f.name), description: str(f.description) || null, permissions: perms(str(f.permissions)) });
    return `${BASE}/roles?notice=created`;
  });
});

rolesPages.post("/roles/:id", async (c) => {
  const f = await formOf(c);
  return formAction(c, `${BASE}/roles`, async () => {
    await roles.updateRole(c.var.services.db, uiActor(c), c.req.param("id"), { permissions: perms(str(f.permissions)) });
    return `${BASE}/roles?notice=updated`;
  });
});

rolesPages.post("/roles/:id/delete", async (c) =>
  formAction(c, `${BASE}/roles`, async () => {
    await roles.deleteRole(c.var.services.db, uiActor(c), c.req.param("id"));
    return `${BASE}/roles?notice=deleted`;
  }),
);
