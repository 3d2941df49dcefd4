/**
 * A status line at the bottom of a terminal (the step running and for how long, a build's latest
 * output line), redrawn in place; permanent lines are written above it. Off a terminal the status
 * line is never drawn, so logs and pipes get only the permanent lines.
 */
export class StatusLine {
  private text = '';
  private timer?: NodeJS.Timeout;
  private readonly tty: boolean;

  constructor(private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, private readonly render?: () => string) {
    this.tty = !!stream.isTTY && process.env.TERM !== 'dumb';
    if (this.tty && render) {
      this.timer = setInterval(() => this.draw(render()), 250);
      this.timer.unref();
    }
  }

  get enabled(): boolean {
    return this.tty;
  }

  /** Sets the status text (drawn on a terminal only). */
  set(text: string): void {
    if (this.tty) this.draw(text);
  }

  /** A permanent line: written above the status line, which is drawn again below it. */
  line(text: string): void {
    if (!this.tty) return void this.stream.write(`${text}\n`);
    this.stream.write(`\r\x1b[2K${text}\n`);
    if (this.text) this.stream.write(this.fit(this.text));
  }

  /** Removes the status line (at the end, before the summary). */
  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty && this.text) this.stream.write('\r\x1b[2K');
    this.text = '';
  }

  private draw(text: string): void {
    this.text = text;
    this.stream.write(`\r\x1b[2K${this.fit(text)}`);
  }

  private fit(text: string): string {
    const width = Math.max(20, (this.stream.columns || 100) - 1);
    // Control characters of a build's output never reach the terminal as such.
    const clean = text.replace(/[\x00-\x1f\x7f]/g, ' ');
    return clean.length > width ? `${clean.slice(0, width - 1)}…` : clean;
  }
}

/** `12.3 s` since `t0`. */
export const since = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
