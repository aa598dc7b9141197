/**
 * Results: every figure is a series of samples (one per run) summarised as
 * median, min and max; ratios are computed per run from paired samples, so
 * load that changes between runs hits both sides of a ratio alike.
 */
export type Unit = "s" | "x" | "MiB" | "ms/s";

export interface Target {
  /** "<=": the median must not exceed value; ">=": it must reach value; "~": an expectation, reported, never failed. */
  op: "<=" | ">=" | "~";
  value: number;
}

export interface Series {
  part: string;
  label: string;
  unit: Unit;
  samples: number[];
  target?: Target;
  /** Shown after the table: how the figure was taken, or why it has fewer runs. */
  note?: string;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN, runs: sorted.length };
}

export function verdict(series: Series): string {
  if (!series.target) return "";
  const { median } = summarize(series.samples);
  if (series.target.op === "~") return "(expected)";
  if (series.target.op === ">=") return median >= series.target.value ? "MET" : "MISSED";
  return median <= series.target.value ? "MET" : "MISSED";
}

function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return "-";
  switch (unit) {
    case "s":
      return `${value.toFixed(value < 10 ? 2 : 1)}s`;
    case "x":
      return value < 0.1 ? value.toFixed(3) : value.toFixed(2);
    case "MiB":
      return `${value.toFixed(0)}MiB`;
    case "ms/s":
      return `${value.toFixed(1)}ms/s`;
  }
}

function formatTarget(target?: Target): string {
  if (!target) return "";
  return `${target.op === "<=" ? "≤" : target.op === ">=" ? "≥" : "~"} ${target.value}`;
}

interface Row {
  part: string;
  label: string;
  median: string;
  min: string;
  max: string;
  runs: string;
  target: string;
  verdict: string;
}

function rows(series: Series[]): Row[] {
  return series.map((s) => {
    const summary = summarize(s.samples);
    return {
      part: s.part,
      label: s.note ? `${s.label} [${noteNumber(series, s)}]` : s.label,
      median: formatValue(summary.median, s.unit),
      min: formatValue(summary.min, s.unit),
      max: formatValue(summary.max, s.unit),
      runs: String(summary.runs),
      target: formatTarget(s.target),
      verdict: verdict(s),
    };
  });
}

function noteNumber(series: Series[], s: Series): number {
  return series.filter((x) => x.note).indexOf(s) + 1;
}

const HEADER: Row = { part: "part", label: "measure", median: "median", min: "min", max: "max", runs: "runs", target: "target", verdict: "" };

/** The table as printed to the terminal: fixed-width columns, notes below. */
export function textTable(series: Series[]): string {
  const all = [HEADER, ...rows(series)];
  const width = (key: keyof Row) => Math.max(...all.map((r) => [...r[key]].length));
  const pad = (text: string, key: keyof Row, right = false) => {
    const fill = " ".repeat(width(key) - [...text].length);
    return right ? fill + text : text + fill;
  };
  const line = (r: Row) =>
    [pad(r.part, "part"), pad(r.label, "label"), pad(r.median, "median", true), pad(r.min, "min", true), pad(r.max, "max", true), pad(r.runs, "runs", true), pad(r.target, "target"), r.verdict]
      .join("  ")
      .trimEnd();
  const rule = "-".repeat(line(all[0]).length);
  const body: string[] = [line(all[0]), rule];
  let lastPart = "";
  for (const r of all.slice(1)) {
    if (lastPart && r.part !== lastPart) body.push("");
    lastPart = r.part;
    body.push(line(r));
  }
  const notes = series.filter((s) => s.note).map((s, i) => `[${i + 1}] ${s.note}`);
  return [...body, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

/** The same table in markdown, for docs/performance.md. */
export function markdownTable(series: Series[]): string {
  const escape = (text: string) => text.replace(/\|/g, "\\|");
  const lines = ["| part | measure | median | min | max | runs | target | |", "|---|---|--:|--:|--:|--:|---|---|"];
  for (const r of rows(series)) {
    lines.push(`| ${r.part} | ${escape(r.label)} | ${r.median} | ${r.min} | ${r.max} | ${r.runs} | ${r.target} | ${r.verdict} |`);
  }
  const notes = series.filter((s) => s.note).map((s, i) => `${i + 1}. ${escape(s.note!)}`);
  return [...lines, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/**
 * A small chart of the ratio series: median bar with a min–max whisker and
 * the target as a red tick, on a log scale (the ratios span 0.01 to 100).
 */
export function ratioChart(series: Series[], title: string): string {
  const ratios = series.filter((s) => s.unit === "x" && s.samples.length > 0);
  const labelWidth = 330;
  const plotWidth = 360;
  const rowHeight = 22;
  const top = 40;
  const height = top + ratios.length * rowHeight + 36;
  const width = labelWidth + plotWidth + 70;
  const [lo, hi] = [-2, 2]; // log10 range: 0.01 .. 100
  const x = (value: number) => labelWidth + ((Math.log10(Math.min(Math.max(value, 10 ** lo), 10 ** hi)) - lo) / (hi - lo)) * plotWidth;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="18" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (let exponent = lo; exponent <= hi; exponent++) {
    const gx = x(10 ** exponent).toFixed(1);
    parts.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - 30}" stroke="${exponent === 0 ? "#888" : "#ddd"}"/>`);
    parts.push(`<text x="${gx}" y="${height - 16}" text-anchor="middle" fill="#555">${10 ** exponent}</text>`);
  }
  ratios.forEach((s, i) => {
    const { median, min, max } = summarize(s.samples);
    const y = top + i * rowHeight;
    const met = verdict(s);
    const color = met === "MISSED" ? "#d9534f" : met === "MET" ? "#5cb85c" : "#5b8dd9";
    parts.push(`<text x="8" y="${y + 14}">${escapeXml(`${s.part} ${s.label}`.slice(0, 58))}</text>`);
    parts.push(`<rect x="${labelWidth}" y="${y + 4}" width="${Math.max(1, x(median) - labelWidth).toFixed(1)}" height="12" fill="${color}" opacity="0.8"/>`);
    parts.push(`<line x1="${x(min).toFixed(1)}" y1="${y + 10}" x2="${x(max).toFixed(1)}" y2="${y + 10}" stroke="black"/>`);
    if (s.target) parts.push(`<line x1="${x(s.target.value).toFixed(1)}" y1="${y + 1}" x2="${x(s.target.value).toFixed(1)}" y2="${y + 19}" stroke="#b00" stroke-width="2"/>`);
    parts.push(`<text x="${labelWidth + plotWidth + 6}" y="${y + 14}">${formatValue(median, "x")}</text>`);
  });
  parts.push(`<text x="${labelWidth}" y="${height - 4}" fill="#555">ratio (log scale); bar = median, whisker = min–max, red tick = target</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
