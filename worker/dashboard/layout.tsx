import type { Child, FC, PropsWithChildren } from "hono/jsx";

export const BASE = "/admin/ui";

/** Pages linked from the top bar; a page not listed here still renders with no item current. */
const NAV: Array<{ id: string; href: string; label: string }> = [
  { id: "users", href: `${BASE}/users`, label: "Proxy users" },
  { id: "roles", href: `${BASE}/roles`, label: "Roles" },
];

/** Adds a page to the top bar (pages for optional features register themselves when mounted). */
export function addNav(item: { id: string; href: string; label: string }) {
  if (!NAV.some((n) => n.id === item.id)) NAV.push(item);
}

export interface PageProps {
  title: string;
  /** Which nav entry is current. */
  nav?: string;
  /** Present when signed in: renders the nav and the sign-out form. */
  csrf?: string;
  notice?: string | undefined;
  error?: string | undefined;
}

export const Layout: FC<PropsWithChildren<PageProps>> = ({ title, nav, csrf, notice, error, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <title>{`${title} · Portcullis`}</title>
      <link rel="stylesheet" href={`${BASE}/assets/style.css`} />
      <script src={`${BASE}/assets/app.js`} defer></script>
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={`${BASE}/`}>
          Portcullis
        </a>
        {csrf ? (
          <>
            <nav aria-label="Main">
              {NAV.map((n) => (
                <a href={n.href} aria-current={n.id === nav ? "page" : undefined}>
                  {n.label}
                </a>
              ))}
            </nav>
            <form method="post" action={`${BASE}/logout`}>
              <Csrf token={csrf} />
              <button class="secondary small" type="submit">
                Sign out
              </button>
            </form>
          </>
        ) : null}
      </header>
      <main id="main">
        <h1>{title}</h1>
        {notice ? (
          <p class="notice" role="status">
            {notice}
          </p>
        ) : null}
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        {children}
      </main>
    </body>
  </html>
);

export const Csrf: FC<{ token: string }> = ({ token }) => <input type="hidden" name="_csrf" value={token} />;

/** A one-button form that POSTs to `action` with the CSRF token (and optional hidden fields). */
export const PostButton: FC<{ action: string; csrf: string; label: string; class?: string; confirm?: string; fields?: Record<string, string>; ariaLabel?: string }> = (p) => (
  <form method="post" action={p.action} data-confirm={p.confirm}>
    <Csrf token={p.csrf} />
    {Object.entries(p.fields ?? {}).map(([k, v]) => (
      <input type="hidden" name={k} value={v} />
    ))}
    <button type="submit" class={p.class ?? "small"} aria-label={p.ariaLabel}>
      {p.label}
    </button>
  </form>
);

export const Badge: FC<{ status: string }> = ({ status }) => <span class={`badge ${status}`}>{status}</span>;

/** A labelled control (every control on every page has a visible label tied to it); with `error`, the problem is shown beside it (the control carries `invalid(id, error)`). */
export const Field: FC<{ id: string; label: string; error?: string | undefined; children: Child }> = ({ id, label, error, children }) => (
  <div class="field">
    <label for={id}>{label}</label>
    {children}
    <FieldError id={id} error={error} />
  </div>
);

/** A labelled filter `<select>`: "Any" (empty value) first, then `options`, with `value` selected. */
export const FilterSelect: FC<{ id: string; label: string; name: string; options: readonly string[]; value: string | undefined }> = ({ id, label, name, options, value }) => (
  <Field id={id} label={label}>
    <select id={id} name={name}>
      <option value="">Any</option>
      {options.map((o) => (
        <option value={o} selected={o === value}>
          {o}
        </option>
      ))}
    </select>
  </Field>
);

/** The problem with a form field, next to it; `id` is the field's (the message's id is `<id>-error`). */
export const FieldError: FC<{ id: string; error: string | undefined }> = ({ id, error }) =>
  error ? (
    <span id={`${id}-error`} class="field-error">
      {error}
    </span>
  ) : null;

/** Attributes that mark a control as invalid and point screen readers at its FieldError. */
export const invalid = (id: string, error: string | undefined) => (error ? { "aria-invalid": "true" as const, "aria-describedby": `${id}-error` } : {});

/** "2026-11-30 06:47 UTC", or a dash for none. Always UTC, so every operator reads the same time. */
export const when = (iso: string | null | undefined) => (iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "—");
