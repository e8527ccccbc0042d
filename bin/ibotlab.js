#!/usr/bin/env node
// The `ibotlab` command. A committed launcher, so it keeps its executable bit
// however often `npm run build` recreates dist/ (npx runs this file directly).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write(`ibotlab: the library is not built (${path.relative(process.cwd(), main)} is missing); run 'npm run build' in ${path.join(__dirname, '..')}\n`);
  process.exit(1);
}
require(main);
