/** A small SVG line chart (no chart library): one or more series over the same time axis. */
export interface Series {
  label: string;
  className: string;
  values: (number | null)[];
}

export function LineChart({ title, series, times, unit }: { title: string; series: Series[]; times: string[]; unit?: string }) {
  const w = 600;
  const h = 160;
  const pad = 28;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1, ...all);
  const n = Math.max(2, times.length);
  const x = (i: number) => pad + ((w - pad - 4) * i) / (n - 1);
  const y = (v: number) => h - pad + 4 - ((h - pad) * v) / max;
  const last = (s: Series) => [...s.values].reverse().find((v) => v !== null);
  const summary = series.map((s) => `${s.label} ${last(s) ?? "—"}${unit ?? ""}`).join(", ");
  return (
    <figure className="chart">
      <figcaption>
        <strong>{title}</strong>{" "}
        {series.map((s) => (
          <span key={s.label} className={`legend ${s.className}`}>
            {s.label}: {last(s) === undefined ? "—" : `${Math.round((last(s) as number) * 10) / 10}${unit ?? ""}`}
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${title}: latest ${summary}`} preserveAspectRatio="none">
        <line x1={pad} y1={h - pad + 4} x2={w} y2={h - pad + 4} className="axis" />
        <text x={2} y={12} className="tick">{Math.round(max)}</text>
        <text x={2} y={h - pad + 4} className="tick">0</text>
        {times.length > 0 && <text x={pad} y={h - 4} className="tick">{new Date(times[0]).toLocaleTimeString()}</text>}
        {times.length > 1 && (
          <text x={w - 4} y={h - 4} className="tick" textAnchor="end">{new Date(times[times.length - 1]).toLocaleTimeString()}</text>
        )}
        {series.map((s) => {
          const pts = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
          return <polyline key={s.label} points={pts.join(" ")} className={`line ${s.className}`} fill="none" />;
        })}
      </svg>
    </figure>
  );
}
