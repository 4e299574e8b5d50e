# syntax=docker/dockerfile:1
#
# The USDC MintService image. Two stages:
#   build    installs every dependency, compiles src/ and gen/ into dist/, then
#            prunes node_modules down to the production dependencies;
#   runtime  a fresh node image with package.json, the pruned node_modules,
#            dist/ and the health-check script only, run as the non-root user
#            `node` that the official image provides. dist/ holds the offline
#            audit verifier too:
#              docker run --rm usdc-mint node dist/src/cli/audit-verify.js postgres://…
#
#   docker build -t usdc-mint .
#   docker run --rm -p 50051:50051 usdc-mint
#
# There is no Docker engine in CI: scripts/docker-build-check.sh (run by
# test/integration/docker-build.test.ts) reads this file and performs its
# COPY and RUN steps in a temporary directory, then starts the server from the
# runtime file set and runs the HEALTHCHECK command against it. Keep COPY
# sources relative to the context, `--from=build` sources under /app, and RUN
# steps in the build stage only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-assets.mjs scripts/healthcheck.mjs ./scripts/
COPY gen ./gen
COPY descriptors ./descriptors
COPY src ./src
# The package's ./client export and mintctl bin re-export these sources (the
# packages users install without the server); the server itself never loads them.
COPY packages/client/src ./packages/client/src
COPY packages/client/gen ./packages/client/gen
COPY packages/mintctl/src ./packages/mintctl/src
RUN npm run build
# --omit=optional too: typescript is a devDependency and also an optional peer of
# viem/abitype ("devOptional" in the lockfile), which --omit=dev alone keeps.
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    MINT_LISTEN=0.0.0.0:50051
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/scripts/healthcheck.mjs ./scripts/
USER node
EXPOSE 50051
# grpc.health.v1.Health/Check for "" on 127.0.0.1:<port of MINT_LISTEN>; exit 0 iff SERVING within 2 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "scripts/healthcheck.mjs"]
# node is PID 1 and handles SIGTERM itself: health NOT_SERVING, drain, exit 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
