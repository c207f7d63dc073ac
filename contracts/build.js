#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js and writes one JSON artifact per
// contract (abi, bytecode, deployedBytecode) to python/parex/_contracts/.
//
// Idempotent: an artifact records the hash of the sources, settings and compiler that made it,
// and nothing is recompiled while every artifact is current. `--force` recompiles anyway.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const SRC = path.join(__dirname, "src");
const OUT = path.join(__dirname, "..", "python", "parex", "_contracts");
const CONTRACTS = ["Token", "Pair"];

// Prague executes everything Cancun defines; pin the target rather than follow solc's default.
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function main() {
  const force = process.argv.includes("--force");
  const files = fs.readdirSync(SRC).filter((f) => f.endsWith(".sol")).sort();
  const sources = {};
  for (const f of files) sources[f] = { content: fs.readFileSync(path.join(SRC, f), "utf8") };

  const hash = crypto
    .createHash("sha256")
    .update(JSON.stringify({ sources, settings: SETTINGS, compiler: solc.version() }))
    .digest("hex");

  const current = CONTRACTS.every((name) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(OUT, `${name}.json`), "utf8")).sourceHash === hash;
    } catch {
      return false;
    }
  });
  if (current && !force) {
    console.log(`contracts up to date (solc ${solc.version()})`);
    return;
  }

  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length > 0) {
    console.error(`solc: ${errors.length} error(s)`);
    process.exit(1);
  }

  fs.mkdirSync(OUT, { recursive: true });
  for (const name of CONTRACTS) {
    const unit = output.contracts[`${name}.sol`];
    if (!unit || !unit[name]) {
      console.error(`solc produced no contract ${name} in ${name}.sol`);
      process.exit(1);
    }
    const c = unit[name];
    const artifact = {
      contractName: name,
      compiler: solc.version(),
      evmVersion: SETTINGS.evmVersion,
      sourceHash: hash,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    // Write then rename, so that an interrupted build never leaves a truncated artifact.
    const target = path.join(OUT, `${name}.json`);
    fs.writeFileSync(target + ".tmp", JSON.stringify(artifact, null, 2) + "\n");
    fs.renameSync(target + ".tmp", target);
    console.log(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes of runtime code`);
  }
  console.log(`compiled with solc ${solc.version()} for ${SETTINGS.evmVersion}`);
}

main();
