// @ts-check
import Table from "cli-table3";
import { createColors } from "picocolors";

/**
 * Colour only on a terminal, and never when NO_COLOR is set (FORCE_COLOR forces it). picocolors'
 * own detection also turns colour on whenever CI is set, which would garble piped output.
 */
const useColor = "FORCE_COLOR" in process.env || (!!process.stdout.isTTY && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb");
export const color = createColors(useColor);

/** @param {string} status */
export function statusColor(status) {
  if (status === "active") return color.green(status);
  if (status === "disabled" || status === "revoked") return color.red(status);
  if (status === "expired") return color.yellow(status);
  return status;
}

/**
 * An aligned, borderless table (ANSI-aware widths).
 * @param {string[]} head
 * @param {Array<Array<string | number | null | undefined>>} rows
 */
export function table(head, rows) {
  const t = new Table({
    head: head.map((h) => color.bold(h)),
    chars: { top: "", "top-mid": "", "top-left": "", "top-right": "", bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "", left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  " },
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
  });
  for (const r of rows) t.push(r.map((v) => (v === null || v === undefined || v === "" ? color.dim("—") : String(v))));
  return t.toString().replace(/[ \t]+$/gm, "");
}

/**
 * Key/value lines for one object.
 * @param {Array<[string, unknown]>} pairs
 */
export function props(pairs) {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${color.bold(k.padEnd(width))}  ${v === null || v === undefined || v === "" ? color.dim("—") : String(v)}`).join("\n");
}

/** @param {string | null | undefined} iso */
export const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : null);

/** @param {unknown} value @returns {void} */
export function printJson(value) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
