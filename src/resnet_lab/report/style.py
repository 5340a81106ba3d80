"""The report's stylesheet, inlined into every page: light, readable, responsive down to phone width."""

CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
        --accent: #0969da; --good-bg: #eef6ff; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: #fff; color: var(--fg); line-height: 1.55;
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 48px; }
header { border-bottom: 1px solid var(--line); margin-bottom: 20px; padding-bottom: 12px; }
h1 { font-size: 1.75rem; line-height: 1.25; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 32px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08rem; margin: 24px 0 8px; }
p, li, dd, summary, figcaption, .subtitle { overflow-wrap: anywhere; }
.subtitle { color: var(--muted); margin: 0; font-size: 1.05rem; }
.generated { color: var(--muted); margin: 6px 0 0; font-size: 0.85rem; }
.meta { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.meta h2 { margin-top: 4px; }
.meta dl { display: grid; grid-template-columns: minmax(7em, max-content) minmax(0, 1fr);
           gap: 4px 16px; margin: 0 0 8px; }
.meta dt { font-weight: 600; color: var(--muted); }
.meta dd { margin: 0; min-width: 0; }
.meta dd dl { grid-template-columns: minmax(6em, max-content) minmax(0, 1fr); margin: 0;
              font-size: 0.92rem; }
.meta dd dl dt { font-weight: 500; }
.findings { background: var(--good-bg); border-left: 4px solid var(--accent); border-radius: 6px;
            padding: 10px 16px; margin: 16px 0; }
.findings h2 { border: 0; margin: 4px 0 6px; font-size: 1.1rem; }
.findings ul { margin: 0; padding-left: 1.2em; }
.findings li { margin: 4px 0; }
/* Tables never break words: a table wider than the page scrolls sideways inside its wrapper
   instead of squeezing its columns (overflow-wrap: anywhere in a cell lets the table shrink a
   column to one letter, so a 12-column table wrapped its first column letter by letter). */
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 12px 0 20px; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.92rem; }
td, th { overflow-wrap: normal; word-break: normal; hyphens: manual; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 6px; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
/* The first column names the row: short names (cell-name-like, hyphens included) stay on one line,
   long text gets room to wrap between words. */
td.key, th.key { white-space: nowrap; }
td.key-long, th.key-long { min-width: 12em; }
tbody tr:hover { background: #fafbfc; }
figure { margin: 16px 0 24px; }
figure img, figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.9rem; margin-top: 6px; text-align: center; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 12px 0; }
summary { cursor: pointer; padding: 8px 12px; background: var(--soft); font-weight: 600; }
pre { margin: 0; padding: 12px; overflow-x: auto; font-size: 0.85rem; line-height: 1.45;
      font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
@media (max-width: 600px) {
  main { padding: 16px 12px 32px; }
  h1 { font-size: 1.4rem; }
  th, td { padding: 5px 8px; }
  .meta { padding: 10px 12px; }
  .meta > dl { grid-template-columns: minmax(0, 1fr); gap: 2px; }
  .meta > dl > dd { margin-bottom: 8px; }
}
@media print { main { max-width: none; } details { border: 0; } tbody tr:hover { background: none; } }
"""
