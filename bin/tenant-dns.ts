#!/usr/bin/env node
/**
 * tenant-dns: the command line. `tenant-dns sidecar`, `tenant-dns policy`,
 * `tenant-dns capture`, `tenant-dns injector`, `tenant-dns inject`, `tenant-dns render`, `tenant-dns gateway`
 * (registered in commands.ts).
 */
import { main } from './commands.ts';

process.exitCode = await main(process.argv);
