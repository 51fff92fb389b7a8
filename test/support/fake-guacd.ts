export * from '../../src/demo/replay-guacd.js';
