// The dashboard's only script, served by Cloudflare's asset layer (wrangler.toml [assets]).
// Progressive enhancement only: every page works without it (copy buttons, confirm dialogs).
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
