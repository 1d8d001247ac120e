// The playground's Python on a GPU without a browser: Pyodide (the npm package the site serves) in
// Node.js or Deno, with a WebGPU engine as `navigator.gpu`, runs benchmarks/node_gpu/playground_run.py
// page_main: BrowserExecutor (browser/webgpu_executor.py, its steps replayed by step_replay.js) and the
// playground's TrainingSession, exactly as the page's worker does.
//
//   node runner.mjs --engine dawn-node --job JOB.json --out RESULT.json [--pyodide DIR] [--webgpu DIR]
//                   [--dawn-option X]... [--feature-level core|compatibility]
//   deno run -A --unstable-webgpu runner.mjs --engine deno-builtin --job JOB.json --out RESULT.json [--pyodide DIR]
//
// Engines: dawn-node  the npm package `webgpu` (dawn.node: Dawn, the engine inside Chrome), under Node.js;
//          deno-builtin  Deno's own navigator.gpu (wgpu, the engine inside Firefox).
// --dawn-option: an option of dawn.node's create() (e.g. backend=opengles, enable-dawn-features=X).
// --feature-level compatibility: for an engine that offers only a compatibility adapter (Dawn over
// OpenGL ES, as on Mesa's llvmpipe, whose Vulkan Dawn refuses): the adapter is asked for with
// featureLevel "compatibility" and its device gets the adapter's compute workgroup limits (compat's
// defaults are below core's, which the kernels assume). The page never does this; the default, core,
// changes nothing.
// JOB.json: playground_run.py's job, plus "repo" (the checkout whose pyscript_app/, shaders/ and this
// folder's playground_run.py go into Pyodide's file system, as the site's py/app.zip places them).
// Data: the job's data_url is a file: URL; fetch() of file: URLs reads the file (Node's fetch cannot).
// Exit codes: 0 result written; 2 bad arguments or no adapter (one line on stderr); 1 anything else.

import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "..", "..");
const ENGINES = ["dawn-node", "deno-builtin"];
const FEATURE_LEVELS = ["core", "compatibility"];
// The limits a compatibility device asks for beyond the page's own (compat defaults: 128 invocations).
const COMPAT_LIMITS = ["maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY", "maxComputeWorkgroupSizeZ",
                       "maxComputeInvocationsPerWorkgroup"];
const IS_DENO = typeof Deno !== "undefined";

class UsageError extends Error {}

function parseArgs(argv) {
  const args = { engine: null, job: null, out: null, pyodide: join(REPO, "node_modules", "pyodide"),
                 webgpu: join(REPO, "node_modules", "webgpu"), dawnOptions: [], featureLevel: "core" };
  const names = { "--engine": "engine", "--job": "job", "--out": "out", "--pyodide": "pyodide",
                  "--webgpu": "webgpu", "--dawn-option": "dawnOptions", "--feature-level": "featureLevel" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (key === undefined) throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
    if (i + 1 >= argv.length) throw new UsageError(`${argv[i]} needs a value`);
    if (key === "dawnOptions") args.dawnOptions.push(argv[i + 1]);
    else args[key] = argv[i + 1];
  }
  for (const key of ["engine", "job", "out"]) if (args[key] === null) throw new UsageError(`--${key} is required`);
  if (!ENGINES.includes(args.engine)) {
    throw new UsageError(`unknown engine ${JSON.stringify(args.engine)} (choose ${ENGINES.join(", ")})`);
  }
  if (!FEATURE_LEVELS.includes(args.featureLevel)) {
    throw new UsageError(`unknown feature level ${JSON.stringify(args.featureLevel)} (choose ${FEATURE_LEVELS.join(", ")})`);
  }
  if (args.engine === "deno-builtin" && !IS_DENO) throw new UsageError("--engine deno-builtin runs under Deno");
  if (args.engine === "dawn-node" && IS_DENO) throw new UsageError("--engine dawn-node runs under Node.js");
  return args;
}

// navigator.gpu and the GPU* globals (GPUBufferUsage, GPUMapMode, ...) that the page's code uses.
async function installEngine(args) {
  if (args.engine === "deno-builtin") {
    if (!navigator.gpu) throw new UsageError("this Deno has no navigator.gpu (run it with --unstable-webgpu)");
    if (args.featureLevel !== "core") compatibilityOnly(navigator.gpu);
    return { engine: args.engine, runtime: `Deno ${Deno.version.deno}`, user_agent: navigator.userAgent,
             feature_level: args.featureLevel };
  }
  const pkg = JSON.parse(readFileSync(join(args.webgpu, "package.json"), "utf8"));
  const { create, globals } = await import(pathToFileURL(join(args.webgpu, "index.js")).href);
  Object.assign(globalThis, globals);
  const userAgent = `Node.js ${process.version}; dawn.node (npm webgpu ${pkg.version})`;
  const gpu = create(args.dawnOptions);
  if (args.featureLevel !== "core") compatibilityOnly(gpu);
  // Node 21+ defines a read-only navigator; Node 20 none: either way, define ours.
  Object.defineProperty(globalThis, "navigator", { value: { gpu, userAgent }, configurable: true, writable: true });
  return { engine: args.engine, runtime: `Node.js ${process.version}`, user_agent: userAgent,
           webgpu_version: pkg.version, dawn_options: args.dawnOptions, feature_level: args.featureLevel };
}

// --feature-level compatibility: gpu.requestAdapter asks for a compatibility adapter, whose
// requestDevice adds COMPAT_LIMITS at the adapter's values to the caller's requiredLimits.
function compatibilityOnly(gpu) {
  const requestAdapter = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = async (options) => {
    const adapter = await requestAdapter({ ...(options ?? {}), featureLevel: "compatibility" });
    if (!adapter) return adapter;
    const requestDevice = adapter.requestDevice.bind(adapter);
    adapter.requestDevice = (descriptor) => {
      const limits = { ...(descriptor?.requiredLimits ?? {}) };
      for (const name of COMPAT_LIMITS) limits[name] = adapter.limits[name];
      return requestDevice({ ...(descriptor ?? {}), requiredLimits: limits });
    };
    return adapter;
  };
}

// fetch() that also reads file: URLs (SiteData fetches the data files; Node's fetch refuses file:).
function installFileFetch() {
  const networkFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.startsWith("file:")) return networkFetch(input, init);
    try {
      return new Response(readFileSync(fileURLToPath(url)), { status: 200 });
    } catch (e) {
      return new Response(String(e), { status: 404 });
    }
  };
}

// The page's files (site_src/hooks/assets.py python_sources) plus the driver, relative to the repo.
function pageFiles(repo) {
  const out = [];
  const walk = (dir, keep) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) { if (entry.name !== "__pycache__") walk(path, keep); }
      else if (keep(entry.name)) out.push(relative(repo, path));
    }
  };
  walk(join(repo, "pyscript_app"), (n) => n.endsWith(".py") || n.endsWith(".js"));
  walk(join(repo, "shaders"), (n) => n.endsWith(".wgsl"));
  out.push(join("benchmarks", "node_gpu", "playground_run.py"));
  return out.sort();
}

async function main() {
  const args = parseArgs(IS_DENO ? Deno.args : process.argv.slice(2));
  let job;
  try {
    job = JSON.parse(readFileSync(args.job, "utf8"));
  } catch (e) {
    throw new UsageError(`cannot read the job ${args.job}: ${e.message}`);
  }
  const engine = await installEngine(args);
  installFileFetch();
  const t0 = performance.now();
  const { loadPyodide } = await import(pathToFileURL(join(args.pyodide, "pyodide.mjs")).href);
  const pyodide = await loadPyodide({ indexURL: args.pyodide + "/" });
  const loadS = (performance.now() - t0) / 1e3;
  const repo = job.repo ?? REPO;
  for (const rel of pageFiles(repo)) {
    const target = `/home/pyodide/${rel}`;
    pyodide.FS.mkdirTree(dirname(target));
    pyodide.FS.writeFile(target, readFileSync(join(repo, rel)));
  }
  const pyPkg = JSON.parse(readFileSync(join(args.pyodide, "package.json"), "utf8"));
  pyodide.globals.set("job_json", JSON.stringify(job));
  const result = JSON.parse(await pyodide.runPythonAsync(
    "from benchmarks.node_gpu.playground_run import page_main\nawait page_main(job_json)"));
  Object.assign(result, engine, { pyodide_version: pyPkg.version, pyodide_load_s: loadS });
  writeFileSync(args.out, JSON.stringify(result) + "\n");
}

function exit(code) {
  // dawn.node keeps the process alive while navigator.gpu is referenced (its README: "Lifetime")
  if (IS_DENO) Deno.exit(code); else process.exit(code);
}

// (one line, exit code) for a failure: bad arguments and "no adapter" (the Python GpuUnavailable
// inside a PythonError's traceback) are the user's to fix; anything else keeps its stack.
function failure(e) {
  if (e instanceof UsageError) return [e.message, 2];
  const text = String(e?.message ?? e);
  const line = text.split("\n").filter((l) => l.includes("GpuUnavailable")).pop();
  return line ? [line, 2] : [e?.stack ?? text, 1];
}

main().then(() => exit(0), (e) => {
  const [text, code] = failure(e);
  console.error(`runner.mjs: ${text}`);
  exit(code);
});
