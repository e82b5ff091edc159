// The runner installed once per V8 context by the function sandbox's helper process.
// Everything is inside one closure so user code (compiled with `new Function`, which sees
// only the global scope) cannot reach the runner's state. The double-underscored limits
// are filled in by helper.py from protocol.py, so parent and helper share one set.
(function () {
  "use strict";
  const G = globalThis;
  const { defineProperty, freeze, getOwnPropertyDescriptor, getOwnPropertyDescriptors,
          getPrototypeOf, isExtensible } = Object;
  const { apply, deleteProperty, ownKeys, setPrototypeOf } = Reflect;
  const parse = JSON.parse, stringify = JSON.stringify;
  const FunctionCtor = Function, StringCtor = String, ErrorCtor = Error;
  const RangeErrorCtor = RangeError, TypeErrorCtor = TypeError;
  const ObjectProto = Object.prototype, isArray = Array.isArray;
  const userFrame = /\(eval at [^\n]*?, <anonymous>:(\d+):(\d+)\)/;
  // What V8 says when memory outside the heap (array buffers, wasm) cannot be had.
  const outOfMemory = /allocation failed|could not allocate memory|unable to grow|out of memory/i;
  const MAX_LINES = __MAX_LINES__, MAX_LINE_CHARS = __MAX_LINE_CHARS__;
  const MAX_OUTPUT_CHARS = __MAX_OUTPUT_CHARS__;

  // mini-racer's setTimeout keeps a Set reachable from the global object, a place where
  // one record could leave data for the next; a synchronous body has no use for timers.
  const noTimers = function () { throw new TypeErrorCtor("timers are not available in a function step"); };
  G.setTimeout = noTimers;
  G.clearTimeout = noTimers;
  G.__timer_manager = undefined;
  // ...and its class is a script-level binding: not a property, so not frozen or deleted.
  const resetTimerClass = typeof __TimerManager === "undefined"
    ? () => {} : new FunctionCtor("__TimerManager = undefined;");
  resetTimerClass();

  // Frozen prototypes make `obj.toString = f` or `this.name = "MyError"` fail on the
  // caller's own objects (the "override mistake"): turn those properties into accessors
  // whose setter defines an own property on the target instead.
  const tame = (obj, name) => {
    const desc = getOwnPropertyDescriptor(obj, name);
    if (!desc || !("value" in desc) || !desc.writable || !desc.configurable) return;
    const value = desc.value;
    defineProperty(obj, name, {
      get() { return value; },
      set(newValue) {
        if (this === obj) {
          throw new TypeErrorCtor("Cannot assign to read only property '" + StringCtor(name) + "' of a built-in object");
        }
        if ((typeof this === "object" && this !== null) || typeof this === "function") {
          defineProperty(this, name, { value: newValue, writable: true, enumerable: true, configurable: true });
        }
      },
      enumerable: desc.enumerable,
      configurable: false,
    });
  };
  for (const name of ownKeys(ObjectProto)) tame(ObjectProto, name);
  for (const name of ownKeys(G)) {
    const ctor = getOwnPropertyDescriptor(G, name).value;
    if (typeof ctor !== "function" || typeof ctor.prototype !== "object" || ctor.prototype === null) continue;
    tame(ctor.prototype, "constructor");
    tame(ctor.prototype, "toString");
    if (ctor === ErrorCtor || ctor.prototype instanceof ErrorCtor) {
      tame(ctor.prototype, "name");
      tame(ctor.prototype, "message");
    }
  }

  // Deep-freeze every built-in, including intrinsics not reachable by property names.
  const hidden = [
    () => getPrototypeOf(function* () {}),
    () => getPrototypeOf(async function () {}),
    () => getPrototypeOf(async function* () {}),
    () => getPrototypeOf([][Symbol.iterator]()),
    () => getPrototypeOf(new Map()[Symbol.iterator]()),
    () => getPrototypeOf(new Set()[Symbol.iterator]()),
    () => getPrototypeOf(""[Symbol.iterator]()),
    () => getPrototypeOf(/(?:)/[Symbol.matchAll]("")),
    () => getPrototypeOf([].values().map((x) => x)),
    () => getPrototypeOf(Iterator.from({ next() { return { done: true }; } })),
    () => getPrototypeOf(new Intl.Segmenter().segment("")),
    () => getPrototypeOf(new Intl.Segmenter().segment("")[Symbol.iterator]()),
    () => getOwnPropertyDescriptor((function () { "use strict"; return arguments; })(), "callee").get,
  ];
  const pending = [G];
  for (const find of hidden) { try { pending.push(find()); } catch (e) { /* absent in this V8 */ } }
  const seen = new Set();
  while (pending.length) {
    const obj = pending.pop();
    if (obj === null || (typeof obj !== "object" && typeof obj !== "function") || seen.has(obj)) continue;
    seen.add(obj);
    pending.push(getPrototypeOf(obj));
    const descs = getOwnPropertyDescriptors(obj);
    for (const key of ownKeys(descs)) {
      const desc = descs[key];
      pending.push(desc.value, desc.get, desc.set);
    }
  }
  seen.delete(G);
  for (const obj of seen) freeze(obj);

  // The global object stays extensible (sloppy `x = 1` must work within a call) but its
  // built-in names become read-only, and whatever a call adds is deleted afterwards.
  const fmt = (v) => {
    const t = typeof v;
    if (t === "string") return v;
    if (t === "number" || t === "boolean" || t === "undefined" || t === "symbol") return StringCtor(v);
    if (t === "bigint") return StringCtor(v) + "n";
    if (t === "function") return "[Function: " + (v.name || "(anonymous)") + "]";
    try {
      if (v instanceof ErrorCtor) return StringCtor(v.name) + ": " + StringCtor(v.message);
      const json = stringify(v);
      return json === undefined ? StringCtor(v) : json;
    } catch (e) {
      try { return StringCtor(v); } catch (e2) { return "[object]"; }
    }
  };
  const typeName = (v) => {
    if (v === null) return "null";
    if (isArray(v)) return "array";
    const t = typeof v;
    if (t !== "object") return t;
    const proto = getPrototypeOf(v);
    if (proto === ObjectProto || proto === null) return "object";
    const ctor = proto.constructor;
    return typeof ctor === "function" && ctor.name ? ctor.name : "object with a custom prototype";
  };
  const describe = (error, memoryMb) => {
    try {
      if (error instanceof ErrorCtor) {
        const message = StringCtor(error.message);
        if (error instanceof RangeErrorCtor && outOfMemory.test(message)) {
          return "function exceeded " + memoryMb + " MB memory";
        }
        let text = StringCtor(error.name) + ": " + message;
        const frame = userFrame.exec(StringCtor(error.stack));
        // `new Function` puts two header lines before the body.
        if (frame) text += " (line " + (frame[1] - 2) + ", column " + frame[2] + ")";
        return text;
      }
      return "Uncaught " + fmt(error);
    } catch (e) {
      return "Uncaught exception";
    }
  };
  const failure = (message) => '{"ok":false,"error":' + stringify(message);

  let baseline;
  const globalProto = getPrototypeOf(G);
  const reset = () => {
    let clean = isExtensible(G);
    if (getPrototypeOf(G) !== globalProto && !setPrototypeOf(G, globalProto)) clean = false;
    for (const key of ownKeys(G)) {
      if (!baseline.has(key) && !deleteProperty(G, key)) clean = false;
    }
    resetTimerClass();
    // RegExp.input / lastMatch / $1… keep the last matched string (legacy statics).
    /(?:)/.exec("");
    return clean;
  };

  const run = (code, inputsJson, memoryMb) => {
    // Something the previous call left behind (a microtask that ran after its own
    // clean-up) would not go away: this call must not see it, so ask for a new context.
    if (!reset()) return "R";
    const logs = [];
    let dropped = 0;
    const log = (...args) => {
      if (logs.length >= MAX_LINES) { dropped++; return; }
      let line = args.map(fmt).join(" ");
      if (line.length > MAX_LINE_CHARS) line = line.slice(0, MAX_LINE_CHARS - 1) + "\u2026";
      logs.push(line);
    };
    const console = freeze({ log, info: log, warn: log, error: log, debug: log, trace: log });
    let body;
    try {
      const inputs = parse(inputsJson);
      const fn = new FunctionCtor("payload", "output", "context", "console", code);
      const value = apply(fn, undefined, [inputs.payload, inputs.output, inputs.context, console]);
      const kind = typeName(value);
      if (kind !== "object") {
        body = failure("function must return an object, got " + kind);
      } else {
        const json = stringify(value);
        body = json.length > MAX_OUTPUT_CHARS
          ? failure("function returned " + json.length + " characters of outputs, more than " + MAX_OUTPUT_CHARS)
          : '{"ok":true,"outputs":' + json;
      }
    } catch (error) {
      body = failure(describe(error, memoryMb));
    }
    const clean = reset();
    if (dropped > 0) logs[MAX_LINES - 1] = "\u2026 " + (dropped + 1) + " more lines not shown";
    return (clean ? "C" : "D") + body + ',"logs":' + stringify(logs) + "}";
  };
  defineProperty(G, "__cxgear_run", { value: run, writable: false, enumerable: false, configurable: false });

  baseline = new Set(ownKeys(G));
  for (const key of baseline) {
    const desc = getOwnPropertyDescriptor(G, key);
    try {
      defineProperty(G, key, "value" in desc ? { writable: false, configurable: false } : { configurable: false });
    } catch (e) { /* already fixed */ }
  }
})();
