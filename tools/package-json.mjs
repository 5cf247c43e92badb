// Writes pkg/package.json from pkg-config/package.json, with the crate's version.
import { readFileSync, writeFileSync } from 'node:fs';

const cargo = readFileSync('Cargo.toml', 'utf8');
const version = cargo.match(/^version = "([^"]+)"/m)[1];
const template = JSON.parse(readFileSync('pkg-config/package.json', 'utf8'));
template.version = version;
writeFileSync('pkg/package.json', JSON.stringify(template, null, 2) + '\n');
