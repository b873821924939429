# The Tidings gateway: Node 24 running the TypeScript sources directly (type stripping), with
# production dependencies only, as the unprivileged `node` user.
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY scripts ./scripts
# Mount points owned by `node`, so named volumes mounted here are writable by it.
RUN mkdir -p /keys /audit && chown node:node /keys /audit
USER node
EXPOSE 8443
# The same V8 flag as `npm start` (README, Configuration).
CMD ["node", "--max-semi-space-size=16", "src/main.ts"]
