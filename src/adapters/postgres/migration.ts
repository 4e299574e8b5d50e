/**
 * One schema migration. Its own module, so that a module keeping its part of
 * the schema (the settlement outbox) and the runner (`migrations.ts`) do not
 * import each other.
 */
export interface Migration {
  /** Applied in ascending order; never renumber or edit an applied one, add a new one. */
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}
