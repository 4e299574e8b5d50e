#!/usr/bin/env node
// The service package's `mintctl` bin: the same program as the `@usdc-mint/mintctl`
// package (packages/mintctl), which a user installs without the server.
import "../../packages/mintctl/src/main.js";
