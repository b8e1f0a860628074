import { Hono } from "hono";
import * as secrets from "../services/secrets";
import type { DashboardEnv } from "./forms";
import { addNav, BASE, Layout, when } from "./layout";

addNav({ id: "secrets", href: `${BASE}/secrets`, label: "Secrets" });

/**
 * Origin secrets, read-only: names, bindings and versions. Values are write-only in the admin
 * API and never reach a page; set or rotate them with `portcullis secrets set` (stdin or a file).
 */
export const secretsPages = new Hono<DashboardEnv>();

secretsPages.get("/secrets", async (c) => {
  const cursor = c.req.query("cursor") || undefined;
  const page = await secrets.listSecrets(c.var.services.db, { limit: 100, cursor });
  return c.html(
    <Layout title="Origin secrets" nav="secrets" csrf={c.var.session.csrfToken}>
      <p class="muted">
        Credentials the gateway injects towards origins. Values are write-only and never shown: set or rotate one with <code>portcullis secrets set NAME &lt; file</code>.
      </p>
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
