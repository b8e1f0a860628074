/**
 * The dashboard's only static files, served by the Worker itself (no CDN, no build step).
 * Colours meet WCAG AA contrast on white (text #1f2937 ≈ 14:1, links/buttons #1d4ed8 ≈ 6.7:1,
 * danger #b91c1c ≈ 6.5:1); every control shows a visible focus ring for keyboard users.
 */
export const STYLE_CSS = `
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;background:#f8fafc}
a{color:#1d4ed8}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,summary:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px 8px;z-index:10}
header.top{display:flex;align-items:center;gap:24px;background:#111827;color:#f9fafb;padding:10px 24px}
header.top .brand{font-weight:700;font-size:17px;color:#f9fafb;text-decoration:none}
header.top nav{display:flex;gap:4px;flex:1}
header.top nav a{color:#e5e7eb;text-decoration:none;padding:6px 10px;border-radius:6px}
header.top nav a[aria-current=page]{background:#374151;color:#fff}
header.top form{margin:0}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:24px;margin:8px 0 16px}h2{font-size:18px;margin:28px 0 10px}
.card{background:#fff;border:1px solid #d1d5db;border-radius:8px;padding:16px;margin:12px 0}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d1d5db;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f3f4f6;font-weight:600;font-size:13px;text-transform:uppercase;letter-spacing:.03em;color:#374151}
td form{display:inline}
tbody th{background:#fff;text-transform:none;letter-spacing:normal;font-size:inherit;color:#1f2937}
.field-error{font-size:13px;color:#991b1b}
table.limits{font-size:14px}table.limits .nowrap{white-space:nowrap}
input[aria-invalid=true]{border-color:#b91c1c;border-width:2px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid}
.badge.active{background:#ecfdf5;color:#065f46;border-color:#6ee7b7}
.badge.disabled,.badge.revoked{background:#fef2f2;color:#991b1b;border-color:#fca5a5}
.badge.expired{background:#fffbeb;color:#92400e;border-color:#fcd34d}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end}
.field{display:flex;flex-direction:column;gap:4px;min-width:160px}
.field label,.legend{font-size:13px;font-weight:600;color:#374151}
input[type=text],input[type=password],input[type=search],input[type=number],select,textarea{font:inherit;padding:6px 8px;border:1px solid #6b7280;border-radius:6px;background:#fff;color:#111827}
textarea{min-width:320px}
fieldset{border:1px solid #d1d5db;border-radius:6px;padding:6px 10px;margin:0}
fieldset label{margin-right:12px;font-weight:400}
button,.button{font:inherit;font-weight:600;padding:6px 14px;border-radius:6px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#fff;color:#1d4ed8}
button.danger{background:#b91c1c;border-color:#b91c1c}
button.small{padding:2px 10px;font-size:13px}
.notice{padding:10px 14px;border-radius:6px;margin:12px 0;border:1px solid #6ee7b7;background:#ecfdf5;color:#065f46}
.error{padding:10px 14px;border-radius:6px;margin:12px 0;border:1px solid #fca5a5;background:#fef2f2;color:#991b1b}
.newkey{border:2px solid #1d4ed8;background:#eff6ff}
.newkey .field{flex:1 1 520px}.newkey input{width:100%;font-family:ui-monospace,Menlo,Consolas,monospace}
.newkey h2{margin-top:0}
.muted{color:#4b5563}
dl.props{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.props dt{font-weight:600;color:#374151}dl.props dd{margin:0}
.signin{max-width:420px;margin:80px auto}
.pager{margin:12px 0;display:flex;gap:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.charts figure{margin:0}
svg text{font:13px system-ui,sans-serif;fill:#374151}
`;

/** Progressive enhancement only: every page works without it. */
export const APP_JS = `
document.addEventListener("click", async (e) => {
  const btn = e.target.closest("[data-copy]");
  if (!btn) return;
  const input = document.getElementById(btn.getAttribute("data-copy"));
  if (!input) return;
  input.select();
  try { await navigator.clipboard.writeText(input.value); } catch { document.execCommand("copy"); }
  btn.textContent = "Copied";
  const status = document.getElementById(btn.getAttribute("data-copy") + "-status");
  if (status) status.textContent = "Copied to the clipboard.";
});
document.addEventListener("submit", (e) => {
  const msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) e.preventDefault();
});
`;
