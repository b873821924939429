#!/usr/bin/env node
// `npx tidings …` inside this project: runs the TypeScript CLI with Node's type stripping.
import { main } from "../src/cli.ts"

process.exitCode = await main(process.argv.slice(2))
