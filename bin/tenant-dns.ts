#!/usr/bin/env node
/**
 * tenant-dns: the command line. `tenant-dns sidecar`, `tenant-dns policy`,
 * `tenant-dns injector`, `tenant-dns inject`.
 */
import { main } from '../sidecar/main.ts';

process.exitCode = await main(process.argv);
