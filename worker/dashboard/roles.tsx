import { Hono } from "hono";
import { adminSchemas } from "../admin/schemas";
import * as roles from "../services/roles";
import { fieldErrors, formAction, formOf, isFieldProblem, parseForm, str, uiActor, type DashboardContext, type DashboardEnv, type FormDraft } from "./forms";
import { BASE, Csrf, Field, FieldError, invalid, Layout, PostButton, when } from "./layout";

const NOTICES: Record<string, string> = { created: "Role created.", updated: "Role updated.", deleted: "Role deleted and removed from every user." };
const perms = (text: string) => text.split(/[\s,]+/).filter(Boolean);

export const rolesPages = new Hono<DashboardEnv>();

/** A refused roles form: the create form's or one role's permissions form, with what was typed. */
interface RoleDraft extends FormDraft<{ name?: string; description?: string; permissions: string }> {
  /** `create`, or the id of the role whose permissions form was refused. */
  form: string;
}

/**
 * Field problems of a roles form. A bad permission is quoted, since the field holds a list
 * (`permissions.2` is the third string typed).
 */
const roleFieldErrors = (err: Parameters<typeof fieldErrors>[0], typed: string[]) =>
  fieldErrors(err, {
    conflictField: "name",
    describe: (path, message) => {
      const item = /^permissions\.(\d+)$/.exec(path);
      return item && typed[Number(item[1])] !== undefined ? `"${typed[Number(item[1])]}": ${message}` : message;
    },
  });

rolesPages.get("/roles", async (c) => renderRoles(c, { notice: NOTICES[c.req.query("notice") ?? ""], error: c.req.query("error") }));

/**
 * The roles page. A refused form is answered with it directly (`httpStatus` 400 or 409), the
 * typed values kept and each problem beside its field.
 */
async function renderRoles(c: DashboardContext, msg: { notice?: string | undefined; error?: string | undefined }, httpStatus: 200 | 400 | 409 = 200, draft?: RoleDraft) {
  const cursor = c.req.query("cursor") || undefined;
  const page = await roles.listRoles(c.var.services.db, { limit: 100, cursor });
  const csrf = c.var.session.csrfToken;
  const created = draft?.form === "create" ? draft : undefined;
  const problem = (field: string) => created?.errors.get(field);
  return c.html(
    <Layout title="Roles" nav="roles" csrf={csrf} notice={msg.notice} error={msg.error}>
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
            {page.data.map((r) => {
              const edited = draft?.form === r.id ? draft : undefined;
              const error = edited?.errors.get("permissions");
              return (
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
                      <input id={`perms-${r.id}`} class="mono" name="permissions" type="text" size={40} value={edited ? edited.values.permissions : r.permissions.join(", ")} {...invalid(`perms-${r.id}`, error)} />
                      <button type="submit" class="small secondary" aria-label={`Save permissions of ${r.name}`}>
                        Save
                      </button>
                      <FieldError id={`perms-${r.id}`} error={error} />
                    </form>
                  </td>
                  <td>{when(r.updatedAt)}</td>
                  <td>
                    <PostButton action={`${BASE}/roles/${r.id}/delete`} csrf={csrf} label="Delete" class="small danger" confirm={`Delete role ${r.name}? Every user holding it loses its permissions.`} ariaLabel={`Delete role ${r.name}`} />
                  </td>
                </tr>
              );
            })}
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
        <Field id="r-name" label="Name (required)" error={problem("name")}>
          <input id="r-name" name="name" type="text" required value={created?.values.name ?? ""} {...invalid("r-name", problem("name"))} />
        </Field>
        <Field id="r-desc" label="Description" error={problem("description")}>
          <input id="r-desc" name="description" type="text" value={created?.values.description ?? ""} {...invalid("r-desc", problem("description"))} />
        </Field>
        <Field id="r-perms" label="Permissions (comma or space separated)" error={problem("permissions")}>
          <input
            id="r-perms"
            name="permissions"
            type="text"
            class="mono"
            size={40}
            placeholder="orders:read, orders:*"
            value={created?.values.permissions ?? ""}
            {...invalid("r-perms", problem("permissions"))}
          />
        </Field>
        <button type="submit">Create role</button>
      </form>
    </Layout>,
    httpStatus,
  );
}

rolesPages.post("/roles", async (c) => {
  const f = await formOf(c);
  const values = { name: str(f.name), description: str(f.description), permissions: str(f.permissions) };
  const typed = perms(values.permissions);
  try {
    // The admin API's body schema: the same name and permission rules as POST /admin/v1/roles.
    await roles.createRole(c.var.services.db, uiActor(c), parseForm(adminSchemas().roleCreateSchema, { name: values.name, description: values.description || null, permissions: typed }));
    return c.redirect(`${BASE}/roles?notice=created`, 303);
  } catch (err) {
    if (isFieldProblem(err)) {
      return renderRoles(c, { error: `The role was not created. ${err.detail}` }, err.status as 400 | 409, { form: "create", values, errors: roleFieldErrors(err, typed) });
    }
    return formAction(c, `${BASE}/roles`, () => Promise.reject(err));
  }
});

rolesPages.post("/roles/:id", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const values = { permissions: str(f.permissions) };
  const typed = perms(values.permissions);
  try {
    // As PATCH /admin/v1/roles/{id} with `permissions`.
    await roles.updateRole(c.var.services.db, uiActor(c), id, parseForm(adminSchemas().rolePatchSchema, { permissions: typed }));
    return c.redirect(`${BASE}/roles?notice=updated`, 303);
  } catch (err) {
    if (isFieldProblem(err)) {
      return renderRoles(c, { error: `The permissions were not saved. ${err.detail}` }, err.status as 400 | 409, { form: id, values, errors: roleFieldErrors(err, typed) });
    }
    return formAction(c, `${BASE}/roles`, () => Promise.reject(err));
  }
});

rolesPages.post("/roles/:id/delete", async (c) =>
  formAction(c, `${BASE}/roles`, async () => {
    await roles.deleteRole(c.var.services.db, uiActor(c), c.req.param("id"));
    return `${BASE}/roles?notice=deleted`;
  }),
);
