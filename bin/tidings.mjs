#!/usr/bin/env node
// `npx tidings …` inside this project: runs the TypeScript CLI with Node's type stripping,
// after the Node version check (a static import would load the TypeScript first).
import "./require-node.mjs"

const { main } = await import("../src/cli.ts")
process.exitCode = await main(process.argv.slice(2))
