/** Thrown, before the query is sent, once an invocation's D1 query budget is spent (see queryBudget). */
export class QueryBudgetSpent extends Error {
  constructor(max: number) {
    super(`the invocation's D1 query budget (${max}) is spent`);
    this.name = "QueryBudgetSpent";
  }
}

export interface QueryBudget {
  /** The same database, counting: each statement sent (alone or in a batch) spends one query. */
  db: D1Database;
  used(): number;
}

/**
 * D1 with a query budget. Cloudflare caps the queries one Worker invocation may make (1,000 on
 * Workers Paid, 50 on Free: D1 "Limits"); the cron's maintenance loops (sealing, retention,
 * key revocation) would otherwise run into that cap at some backlog size and lose the rest of
 * the run to the error. With a budget they stop cleanly before it, and the next run goes on.
 * Whether the platform counts a batch once or per statement is not documented: the budget
 * counts every statement, so it errs on the safe side.
 */
export function queryBudget(d1: D1Database, max: number): QueryBudget {
  let used = 0;
  const spend = (n: number) => {
    if (used + n > max) throw new QueryBudgetSpent(max);
    used += n;
  };
  const real = new WeakMap<object, D1PreparedStatement>();
  const counting = (st: D1PreparedStatement): D1PreparedStatement => {
    const wrapped = new Proxy(st, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target);
        if (typeof v !== "function") return v;
        if (prop === "bind") return (...args: unknown[]) => counting(target.bind(...args));
        if (prop === "first" || prop === "all" || prop === "run" || prop === "raw") {
          return (...args: unknown[]) => {
            spend(1);
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return v.bind(target);
      },
    });
    real.set(wrapped, st);
    return wrapped;
  };
  const db = new Proxy(d1, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => counting(target.prepare(sql));
      if (prop === "batch") {
        return (statements: D1PreparedStatement[]) => {
          spend(statements.length);
          return target.batch(statements.map((s) => real.get(s) ?? s));
        };
      }
      if (prop === "exec") {
        return (sql: string) => {
          spend(1);
          return target.exec(sql);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { db, used: () => used };
}
