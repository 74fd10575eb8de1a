// wasm-opt -Oz over many modules in one process: the lazy pages' modules are many and small,
// and binaryen (npm, a wasm build) takes longer to start than to optimize one of them.
//   node scripts/wasm-opt.mjs FILE.wasm…   (each rewritten in place)
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../end2end/package.json', import.meta.url));
const binaryen = (await import(require.resolve('binaryen'))).default;

const F = binaryen.Features;
binaryen.setOptimizeLevel(2);
binaryen.setShrinkLevel(2);
for (const file of process.argv.slice(2)) {
  const module = binaryen.readBinary(fs.readFileSync(file));
  module.setFeatures(F.MVP | F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt | F.SignExt | F.MutableGlobals);
  module.optimize();
  fs.writeFileSync(file + '.opt', module.emitBinary());
  module.dispose();
  fs.renameSync(file + '.opt', file);
}
