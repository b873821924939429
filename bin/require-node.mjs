// Runs before any TypeScript is loaded (npm start, demo, test and the tidings bin): on a Node
// without type stripping the sources fail with a cryptic ERR_UNKNOWN_FILE_EXTENSION, so say
// what is needed instead, in one line, with the configuration exit code (78).
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`tidings: Node >= 22.19 is required (this is ${process.version})\n`)
  process.exit(78)
}
