// Charts on TradingView Lightweight Charts (vendored in ./vendor, Apache
// 2.0; credited in the page footer). The library is loaded only by pages
// that draw a chart. Times are shown in the user's time zone, colours
// follow the theme, and every chart resizes with its box.
//
// Values here are floats: charts are geometry. The exact figures are the
// tables' and the labels' job.

import { fmtTime } from './format.js';

let library = null;

function load() {
  library ??= import('./vendor/lightweight-charts.mjs');
  return library;
}

let probe = null;

/**
 * A theme colour as `rgb(...)`. The variables hold `light-dark(...)`, which
 * only an element's resolved style turns into the colour in use.
 */
function css(name) {
  if (!probe) {
    probe = document.createElement('span');
    probe.hidden = true;
    document.body.append(probe);
  }
  probe.style.color = `var(${name})`;
  return getComputedStyle(probe).color;
}

/** `rgb(r, g, b)` with an opacity. */
function alpha(rgb, opacity) {
  const [r, g, b] = rgb.match(/[\d.]+/g) ?? [0, 0, 0];
  return `rgba(${r}, ${g}, ${b}, ${opacity})`;
}

function themeOptions() {
  return {
    layout: {
      background: { type: 'solid', color: css('--surface') },
      textColor: css('--muted'),
      fontFamily: getComputedStyle(document.body).fontFamily,
      attributionLogo: false,
    },
    grid: {
      vertLines: { color: css('--surface-2') },
      horzLines: { color: css('--surface-2') },
    },
    rightPriceScale: { borderColor: css('--border') },
    timeScale: { borderColor: css('--border') },
  };
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const monthFormat = new Intl.DateTimeFormat(undefined, { month: 'short' });
const yearFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric' });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
const secondsFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/** Tick labels in local time (the library's own are in UTC). */
function tickMark(time, type) {
  const d = new Date(time * 1000);
  switch (type) {
    case 0: return yearFormat.format(d);
    case 1: return monthFormat.format(d);
    case 2: return dayFormat.format(d);
    case 4: return secondsFormat.format(d);
    default: return timeFormat.format(d);
  }
}

function baseOptions(extra = {}) {
  return {
    autoSize: true,
    ...themeOptions(),
    localization: { timeFormatter: (t) => fmtTime(t * 1000) },
    timeScale: { ...themeOptions().timeScale, timeVisible: true, secondsVisible: false, tickMarkFormatter: tickMark },
    crosshair: { mode: 0 },
    ...extra,
  };
}

/** Seconds since the epoch from an ISO string, a Date or milliseconds. */
export function toChartTime(value) {
  const ms = typeof value === 'number' ? value : new Date(value).getTime();
  return Math.floor(ms / 1000);
}

/** Points sorted by time with one value per time (the library requires both). */
function clean(points) {
  const sorted = [...points].sort((a, b) => a.time - b.time);
  const out = [];
  for (const p of sorted) {
    if (!Number.isFinite(p.value ?? p.close)) continue;
    if (out.length && out[out.length - 1].time === p.time) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}

function emptyNote(container, text) {
  let note = container.querySelector('.chart-empty');
  if (!text) {
    note?.remove();
    return;
  }
  if (!note) {
    note = document.createElement('div');
    note.className = 'chart-empty';
    container.append(note);
  }
  note.textContent = text;
}

/**
 * A line (or area) chart of one or more series:
 * `series: [{name, colorVar, area, points: [{time: seconds, value}]}]`.
 * `empty` is shown while there are no points.
 */
export async function lineChart(container, { series, empty = 'No data yet.', percent = false, height }) {
  const lw = await load();
  if (height) container.style.height = `${height}px`;
  const chart = lw.createChart(container, baseOptions({
    rightPriceScale: { ...themeOptions().rightPriceScale, scaleMargins: { top: 0.1, bottom: 0.1 } },
  }));
  const handles = series.map((s) => {
    const color = css(s.colorVar ?? '--accent');
    const options = {
      lineWidth: 2,
      priceLineVisible: false,
      title: s.name ?? '',
      priceFormat: percent ? { type: 'percent' } : { type: 'price', precision: s.precision ?? 2, minMove: 10 ** -(s.precision ?? 2) },
    };
    const handle = s.area
      ? chart.addSeries(lw.AreaSeries, { ...options, lineColor: color, topColor: alpha(color, 0.33), bottomColor: alpha(color, 0.02) })
      : chart.addSeries(lw.LineSeries, { ...options, color });
    handle.setData(clean(s.points ?? []));
    return { handle, spec: s };
  });
  const total = () => handles.reduce((n, s) => n + (s.handle.data().length), 0);
  emptyNote(container, total() ? null : empty);
  chart.timeScale().fitContent();
  const restyle = () => {
    chart.applyOptions(themeOptions());
    for (const { handle, spec } of handles) {
      const color = css(spec.colorVar ?? '--accent');
      if (spec.area) handle.applyOptions({ lineColor: color, topColor: alpha(color, 0.33), bottomColor: alpha(color, 0.02) });
      else handle.applyOptions({ color });
    }
  };
  addEventListener('themechange', restyle);
  return {
    chart,
    setData(index, points) {
      handles[index].handle.setData(clean(points));
      emptyNote(container, total() ? null : empty);
      chart.timeScale().fitContent();
    },
    update(index, point) {
      const data = handles[index].handle.data();
      if (data.length && point.time < data[data.length - 1].time) return;
      handles[index].handle.update(point);
      emptyNote(container, null);
    },
    remove() {
      removeEventListener('themechange', restyle);
      chart.remove();
    },
  };
}

/**
 * A candlestick chart with volume below and markers (the user's fills):
 * candles `[{time, open, high, low, close, volume}]` in seconds and floats.
 */
export async function candleChart(container, { pricePrecision = 2, empty = 'No candles yet.' }) {
  const lw = await load();
  const chart = lw.createChart(container, baseOptions());
  const up = () => css('--gain');
  const down = () => css('--loss');
  const candles = chart.addSeries(lw.CandlestickSeries, {
    upColor: up(), downColor: down(), borderUpColor: up(), borderDownColor: down(), wickUpColor: up(), wickDownColor: down(),
    priceFormat: { type: 'price', precision: pricePrecision, minMove: 10 ** -pricePrecision },
  });
  const volume = chart.addSeries(lw.HistogramSeries, {
    priceFormat: { type: 'volume' },
    priceScaleId: 'volume',
    priceLineVisible: false,
    lastValueVisible: false,
  });
  chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
  const markers = lw.createSeriesMarkers(candles, []);
  const volumeBar = (c) => ({ time: c.time, value: c.volume, color: alpha(c.close >= c.open ? up() : down(), 0.4) });
  addEventListener('themechange', () => {
    chart.applyOptions(themeOptions());
    candles.applyOptions({ upColor: up(), downColor: down(), borderUpColor: up(), borderDownColor: down(), wickUpColor: up(), wickDownColor: down() });
  });
  return {
    chart,
    setCandles(list) {
      const data = clean(list.map((c) => ({ ...c, value: c.close })));
      candles.setData(data.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
      volume.setData(data.map(volumeBar));
      emptyNote(container, data.length ? null : empty);
      chart.timeScale().fitContent();
    },
    /** Adds or replaces the newest candle. */
    update(c) {
      const data = candles.data();
      if (data.length && c.time < data[data.length - 1].time) return;
      candles.update({ time: c.time, open: c.open, high: c.high, low: c.low, close: c.close });
      volume.update(volumeBar(c));
      emptyNote(container, null);
    },
    /** `[{time, side: 'buy'|'sell', text}]`: arrows below buys and above sells. */
    setMarkers(list) {
      const sorted = [...list].sort((a, b) => a.time - b.time);
      markers.setMarkers(sorted.map((m) => ({
        time: m.time,
        position: m.side === 'buy' ? 'belowBar' : 'aboveBar',
        shape: m.side === 'buy' ? 'arrowUp' : 'arrowDown',
        color: m.side === 'buy' ? up() : down(),
        text: m.text,
      })));
    },
    lastTime() {
      const data = candles.data();
      return data.length ? data[data.length - 1].time : null;
    },
  };
}
