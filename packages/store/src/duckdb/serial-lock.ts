/** Runs async tasks one at a time, in the order they were asked for. A DuckDB connection runs
 * one transaction at a time, so everything that writes goes through one of these. */
export class SerialLock {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  run<T>(task: () => Promise<T>): Promise<T> {
    this.queued++;
    const result = this.tail.then(task).finally(() => {
      this.queued--;
    });
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Resolves once no task is queued or running, including tasks queued while waiting. */
  async idle(): Promise<void> {
    while (this.queued > 0) await this.tail;
  }
}
