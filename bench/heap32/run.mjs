// Drives bench/heap32/harness.py on the MicroPython webassembly port (32-bit) under node.
//
//   node run.mjs --fw DIR --work DIR --feed FILE [--slice S] [--heapsize BYTES] [--modules a,b,...]
//
// DIR --fw (the firmware snapshot: app/, protocols/, harness.py) is copied into the port's virtual
// filesystem at /fw, --work/config.json to /work/config.json, the feed to /feed.jsonl. Then the same call
// sequence as bench/heap32/unix_driver.py, each call a separate entry from JavaScript: in this port
// gc.collect() called from Python only asks for a collection, which runs when control returns to
// JavaScript, so harness.sample() reads gc.mem_alloc() in the call after the step that asked.
// Python functions are called through their proxies (no source compiled per call). Prints
// `RESULT {json}` on stdout; the port's own output goes to stderr.

import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

function arg(name, dflt) {
  const i = process.argv.indexOf("--" + name);
  if (i < 0) {
    if (dflt === undefined) {
      console.error(`run.mjs: --${name} is required`);
      process.exit(2);
    }
    return dflt;
  }
  return process.argv[i + 1];
}

function copyTree(FS, src, dst) {
  FS.mkdir(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, ent.name);
    const d = dst + "/" + ent.name;
    if (ent.isDirectory()) {
      copyTree(FS, s, d);
    } else if (ent.isFile()) {
      FS.writeFile(d, fs.readFileSync(s));
    }
  }
}

const fwDir = arg("fw");
const workDir = arg("work");
const feed = arg("feed");
const slice = Number(arg("slice", "15"));
const heapsize = Number(arg("heapsize", String(2 * 1024 * 1024)));
const modules = arg("modules", "").split(",").filter((m) => m);

const mp = await loadMicroPython({
  heapsize,
  stdout: (line) => process.stderr.write("mp: " + line + "\n"),
  stderr: (line) => process.stderr.write("mp: " + line + "\n"),
});
const FS = mp.FS;
copyTree(FS, fwDir, "/fw");
FS.mkdir("/work");
FS.writeFile("/work/config.json", fs.readFileSync(path.join(workDir, "config.json")));
FS.writeFile("/feed.jsonl", fs.readFileSync(feed));

try {
  mp.runPython("import sys\nsys.path.insert(0, '/fw')\nimport harness");
  const h = mp.pyimport("harness");
  const setup = h.setup;
  const step = h.step;
  const sample = h.sample;
  setup(JSON.stringify({ paths: ["/fw"], work: "/work", feed: "/feed.jsonl", slice_s: slice, modules }));
  for (;;) {
    const state = step();
    sample();
    if (state === "done") break;
  }
  process.stdout.write("RESULT " + h.result() + "\n");
} catch (err) {
  process.stderr.write("run.mjs: " + (err && err.stack ? err.stack : String(err)) + "\n");
  process.exit(1);
}
