// The Node side of JavaScript/TypeScript suite hooks (softprobe-runtime/src/suite/node.rs):
// imports the hook modules named in SOFTPROBE_HOOK_FILES, answers `{"ready": ...}` with their
// exported functions, then one `{"id", "ok", "value"|"error"}` line per `{"id", "hook", "args"}`
// line read on stdin. Hooks' own console output goes to stderr so stdout stays the protocol.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { createRequire, register } from "node:module";

const write = process.stdout.write.bind(process.stdout);
const send = (message) => write(JSON.stringify(message) + "\n");
for (const level of ["log", "info", "debug"]) {
  console[level] = (...args) => console.error(...args);
}

// Types are stripped by the `typescript` package on a Node without its own stripping.
const LOADER = `
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
let ts;
export async function initialize(data) {
  ts = createRequire(data.tsPath)(data.tsPath);
}
export async function load(url, context, next) {
  if (url.startsWith("file:") && /\\.m?ts$/.test(url)) {
    const fileName = fileURLToPath(url);
    const source = await readFile(fileName, "utf8");
    const out = ts.transpileModule(source, {
      fileName,
      reportDiagnostics: false,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
    });
    return { format: "module", source: out.outputText, shortCircuit: true };
  }
  return next(url, context);
}
`;

async function start() {
  const files = JSON.parse(process.env.SOFTPROBE_HOOK_FILES || "[]");
  const typed = files.filter((f) => /\.m?ts$/.test(f));
  if (typed.length > 0 && !process.features?.typescript) {
    let tsPath;
    try {
      tsPath = createRequire(typed[0]).resolve("typescript");
    } catch {
      throw new Error(
        `${typed[0]}: TypeScript hooks on Node ${process.version} (which cannot strip types itself) need the "typescript" npm package: ` +
          "run `npm install --save-dev typescript` next to the hooks, or set NODE_PATH to a node_modules directory that holds it",
      );
    }
    register("data:text/javascript," + encodeURIComponent(LOADER), { data: { tsPath } });
  }
  const hooks = new Map();
  for (const file of files) {
    let module;
    try {
      module = await import(pathToFileURL(file).href);
    } catch (e) {
      throw new Error(`${file} could not be loaded: ${e && e.stack ? e.stack : e}`);
    }
    for (const [name, value] of Object.entries(module)) {
      if (typeof value !== "function") continue;
      if (hooks.has(name)) {
        throw new Error(`hook ${name} is exported by both ${hooks.get(name).file} and ${file}`);
      }
      hooks.set(name, { fn: value, file });
    }
  }
  return hooks;
}

let hooks;
try {
  hooks = await start();
} catch (e) {
  send({ ready: false, error: e && e.message ? e.message : String(e) });
  process.exit(1);
}
send({ ready: true, exports: Object.fromEntries([...hooks].map(([k, v]) => [k, v.file])) });

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let id = null;
  try {
    const call = JSON.parse(line);
    id = call.id;
    const hook = hooks.get(call.hook);
    if (!hook) throw new Error(`no loaded module exports ${call.hook}`);
    const value = await hook.fn(call.args);
    send({ id, ok: true, value: value === undefined ? null : value });
  } catch (e) {
    send({ id, ok: false, error: e && e.stack ? e.stack : String(e) });
  }
});
lines.on("close", () => process.exit(0));
