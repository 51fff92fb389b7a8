# recgw: slim Node 22 image with Debian's ffmpeg, running as a non-root user.
FROM node:22-bookworm-slim AS build
# A compiler for native/page-cache (npm ci's install step builds it against Node's own headers).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY native ./native
COPY src ./src
RUN npm ci && npm run build:native && npm prune --omit=dev

FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/page-cache/build/Release/recgw_page_cache.node ./native/page-cache/build/Release/
COPY package.json ./
COPY bin ./bin
# recgw demo replays these recordings through a built-in guacd stand-in.
COPY fixtures/recordings ./fixtures/recordings
RUN mkdir -p /data/spool /data/recordings && chown -R node:node /data
USER node
ENV NODE_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    RECORDING_SPOOL_DIR=/data/spool \
    RECORDING_UPLOAD_LOCATION=file:///data/recordings/{username}/{session_id} \
    FFMPEG_PATH=/usr/bin/ffmpeg
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.GATEWAY_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/recgw", "serve"]
