import {
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBDataChunk,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { TableColumns } from './duckdb-rows.js';

/** DuckDB's vector size: the most rows one data chunk holds. */
const CHUNK_ROWS = 2048;

/** An appender that remembers its table's column types. A failed appender keeps the rows it
 * could not write, so after an error it is closed and a new one opened. */
export class TableAppender {
  private constructor(
    private readonly appender: DuckDBAppender,
    private readonly types: readonly DuckDBType[],
  ) {}

  static async open(conn: DuckDBConnection, table: string): Promise<TableAppender> {
    const appender = await conn.createAppender(table);
    const types = Array.from({ length: appender.columnCount }, (_, i) => appender.columnType(i));
    return new TableAppender(appender, types);
  }

  /** Fills data chunks column by column (cheaper than one native call per value) and appends
   * them, letting the event loop run between chunks. */
  async append<R>(cols: TableColumns<R>, records: readonly R[]): Promise<void> {
    if (cols.values.length !== this.types.length) {
      throw new Error(
        `${cols.table}: the appender has ${this.types.length} columns, not ${cols.values.length}`,
      );
    }
    for (let offset = 0; offset < records.length; offset += CHUNK_ROWS) {
      if (offset > 0) await new Promise<void>((r) => setImmediate(r));
      const n = Math.min(CHUNK_ROWS, records.length - offset);
      const columns = cols.values.map((value) => {
        const out = new Array<DuckDBValue>(n);
        for (let i = 0; i < n; i++) out[i] = value(records[offset + i]!);
        return out;
      });
      const chunk = DuckDBDataChunk.create(this.types, n);
      chunk.setColumns(columns);
      this.appender.appendDataChunk(chunk);
    }
  }

  flush(): void {
    this.appender.flushSync();
  }

  close(): void {
    try {
      this.appender.clear();
      this.appender.closeSync();
    } catch {
      // Already failed or closed: the connection discards it.
    }
  }
}
