// The micro-benchmarks' D1 stand-in (bench/micro.mjs in Node, bench/worker/micro-workerd.ts in
// workerd): the warm path must never read D1, so any read or batch fails the run loudly; the
// key-use writes (`update …`) are accepted and counted through `onWrite`.
export function stubD1(onWrite = () => {}) {
  return {
    prepare(query) {
      const write = /^\s*update/i.test(query);
      const refuse = async () => {
        throw new Error(`micro-benchmark: unexpected D1 read: ${query}`);
      };
      const stmt = {
        bind: () => stmt,
        run: async () => {
          if (!write) return refuse();
          onWrite();
          return { success: true, meta: {}, results: [] };
        },
        all: refuse,
        raw: refuse,
        first: refuse,
      };
      return stmt;
    },
    batch: async () => {
      throw new Error("micro-benchmark: unexpected D1 batch");
    },
  };
}
