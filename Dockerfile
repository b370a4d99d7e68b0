# udpmesh replicator image: small (node slim, production deps only), runs as a non-root user.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY replicator ./replicator
RUN groupadd --system --gid 10001 udpmesh && useradd --system --uid 10001 --gid udpmesh --no-create-home udpmesh
USER 10001:10001
EXPOSE 7001/udp 7946/udp 9100/tcp
ENTRYPOINT ["node", "--import", "tsx", "replicator/main.ts"]
CMD ["--config", "/etc/udpmesh/config.yaml"]
