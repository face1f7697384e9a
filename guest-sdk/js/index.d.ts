// Types of wasmtx-guest: write wasmtx branch functions in JavaScript.

/** The WIT `op`: which step of the protocol the host asks the branch to run. */
export type Op = 'action' | 'compensate' | 'try' | 'confirm' | 'cancel' | 'commit' | 'rollback' | 'call';

/** The WIT `branch-context` record, as ComponentizeJS passes it. */
export interface BranchContext {
  gid: string;
  branchId: string;
  op: Op;
  attempt: number;
  headers: Array<[string, string]>;
}

/** What the host tells a branch function about the invocation. Frozen. */
export class Context {
  /** Every field optional, for tests: `new Context({ op: 'action', attempt: 2 })`. Defaults to a first direct call. */
  constructor(ctx?: Partial<BranchContext>);
  /** Global transaction id; empty for a direct call. */
  readonly gid: string;
  /** Branch id inside the transaction ("01", "02", ...); empty for a direct call. */
  readonly branchId: string;
  readonly op: Op;
  /** 1 on the first attempt, one more on every retry of the same op. */
  readonly attempt: number;
  /** The transaction's extra headers, in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The first header named `name`, ignoring ASCII case. */
  header(name: string): string | undefined;
  /** True for compensate, cancel and rollback: these must not fail for business reasons. */
  readonly isUndo: boolean;
}

/** A parsed JSON payload: integer literals are BigInts, other numbers Numbers. */
export type Json = null | boolean | number | bigint | string | Json[] | { [key: string]: Json };

/**
 * A branch function. Its output is written as JSON (BigInts as integers,
 * Uint8Arrays as arrays of numbers, `undefined` as `null`).
 */
export type BranchFunction = (ctx: Context, payload: Json) => unknown | Promise<unknown>;

/** The WIT `branch-error`. */
export type WitBranchError = { tag: 'failure'; val: string } | { tag: 'retry'; val: string };

/** The export of the WIT interface `wasmtx:runtime/handler`. */
export interface Handler {
  functions(): string[];
  invoke(
    name: string,
    ctx: BranchContext,
    payload: Uint8Array,
  ): Promise<{ tag: 'ok'; val: Uint8Array } | { tag: 'err'; val: WitBranchError }>;
}

/**
 * The `handler` export for these functions, by name:
 * `export const handler = branch({ 'trans-out': transOut })`.
 * Throws a TypeError for an empty table, a bad name or a non-function.
 */
export function branch(functions: Record<string, BranchFunction> | Map<string, BranchFunction>): Handler;

/** A business refusal: never retried. */
export class Failure extends Error {}
/** A transient problem: the host rolls back and calls again later. */
export class Retry extends Error {}
/** A payload the function cannot read: `failure("invalid payload for <function>: <message>")`. */
export class InvalidPayload extends Error {}

/** A statement the database refused; a Retry unless caught. */
export class DbError extends Retry {
  constructor(error: { code?: string | null; message: string });
  /** SQLSTATE on Postgres, extended result code on SQLite; null if none. */
  readonly code: string | null;
  /** The database's own message (`message` is `database error <code>: <detail>`). */
  readonly detail: string;
  isUniqueViolation(): boolean;
  isForeignKeyViolation(): boolean;
}

/** A WIT `value` written out, passed as it is (after a check). */
export type WitValue =
  | { tag: 'null' }
  | { tag: 'boolean'; val: boolean }
  | { tag: 'int'; val: bigint | number }
  | { tag: 'float'; val: number }
  | { tag: 'text'; val: string }
  | { tag: 'bytes'; val: Uint8Array };

/**
 * A statement parameter: null/undefined, boolean, number (int if a safe
 * integer, else float), bigint (i64), string, Uint8Array, or a WitValue.
 */
export type Param = null | undefined | boolean | number | bigint | string | Uint8Array | WitValue;

/** A column value: int is a BigInt, float a Number, bytes a Uint8Array. */
export type Cell = null | boolean | bigint | number | string | Uint8Array;

/** Rows by column name (the first column of a name wins); `columns` lists them all. */
export type Rows = Array<Record<string, Cell>> & { readonly columns: readonly string[] };

export const db: {
  /** Runs a statement; the number of rows affected. Throws DbError. */
  execute(sql: string, ...params: Param[]): number;
  /** Runs a query; every row. Throws DbError. */
  query(sql: string, ...params: Param[]): Rows;
  /** `n` bound as a float even if it is an integer. */
  float(n: number): { tag: 'float'; val: number };
};

/** Log lines through the host; the parts are joined with spaces. */
export const log: {
  trace(...parts: unknown[]): void;
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
};

/** A field kind; a trailing `?` makes the field optional (missing or null reads as undefined). */
export type Kind =
  | 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'object' | 'any'
  | 'string?' | 'integer?' | 'number?' | 'boolean?' | 'array?' | 'object?' | 'any?';

type KindType<K extends Kind> = K extends `${infer B}?`
  ? KindType<B & Kind> | undefined
  : K extends 'string' ? string
  : K extends 'integer' ? bigint
  : K extends 'number' ? number
  : K extends 'boolean' ? boolean
  : K extends 'array' ? Json[]
  : K extends 'object' ? { [key: string]: Json }
  : Json;

/** `value` if it is a JSON object; else InvalidPayload("<what> must be a JSON object"). */
export function object(value: Json, what?: string): { [key: string]: Json };
/** The field `name` of `obj` as `kind`; InvalidPayload if missing, repeated or of another kind. */
export function field<K extends Kind>(obj: { [key: string]: Json }, name: string, kind: K): KindType<K>;
/** `value` as an object with the fields of `shape`, read with `field`. */
export function fields<S extends Record<string, Kind>>(value: Json, shape: S, what?: string): { [N in keyof S]: KindType<S[N]> };
