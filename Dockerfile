# udpmesh replicator image: small (node slim, production deps only), runs as a non-root user, and runs
# compiled JavaScript (tsc -> dist/, source maps), not tsx: less memory and a faster start.
#
# build: the batched-I/O addon (node-gyp against the headers of the `node` devDependency: nothing else is
# downloaded; `build:native` fails the image build if it does not compile) and the JS.
FROM node:24-bookworm-slim AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY replicator ./replicator
RUN npm ci && npm run build:native && npm run build

# production dependencies only, no install scripts (the addon comes from the build stage)
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
# Next to dist/replicator/io, where replicator/io/native.ts looks for it.
COPY --from=build /app/replicator/io/native/build/Release/udp_batch.node ./dist/replicator/io/native/build/Release/udp_batch.node
RUN groupadd --system --gid 10001 udpmesh && useradd --system --uid 10001 --gid udpmesh --no-create-home udpmesh
USER 10001:10001
EXPOSE 7001/udp 7946/udp 9100/tcp
ENTRYPOINT ["node", "--enable-source-maps", "dist/replicator/main.js"]
CMD ["--config", "/etc/udpmesh/config.yaml"]
