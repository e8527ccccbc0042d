/**
 * A terminal progress bar for long work (training, feature extraction).
 * On a TTY it redraws one line; elsewhere (CI logs, pipes) it prints a line
 * at most every `logEverySec` seconds so logs stay readable.
 */
export interface ProgressOptions {
  label?: string;
  width?: number;
  stream?: NodeJS.WriteStream;
  logEverySec?: number;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--:--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export class ProgressBar {
  private readonly total: number;
  private readonly opts: Required<Omit<ProgressOptions, 'stream'>> & { stream: NodeJS.WriteStream };
  private readonly start = Date.now();
  private lastLog = 0;
  private startCount = 0;
  private first = true;

  constructor(total: number, opts: ProgressOptions = {}) {
    this.total = Math.max(1, total);
    this.opts = { label: opts.label ?? '', width: opts.width ?? 24, stream: opts.stream ?? process.stderr, logEverySec: opts.logEverySec ?? 10 };
  }

  /** Show progress `done` of total with a free-form status text. */
  update(done: number, status = ''): void {
    if (this.first) {
      this.startCount = done;
      this.first = false;
    }
    const frac = Math.min(1, done / this.total);
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = (done - this.startCount) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : NaN;
    const filled = Math.round(frac * this.opts.width);
    const bar = '█'.repeat(filled) + '░'.repeat(this.opts.width - filled);
    const line = `${this.opts.label ? this.opts.label + ' ' : ''}${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${this.total} ${status} ETA ${formatDuration(eta)}`;
    const s = this.opts.stream;
    if (s.isTTY) {
      s.write(`\r${line.slice(0, (s.columns ?? 160) - 1)}\x1b[K`);
    } else if (elapsed - this.lastLog >= this.opts.logEverySec || done >= this.total) {
      this.lastLog = elapsed;
      s.write(line + '\n');
    }
  }

  done(message = ''): void {
    const s = this.opts.stream;
    if (s.isTTY) s.write('\n');
    if (message) s.write(message + '\n');
  }
}
