/** Entry of the GitHub Action (bundled to dist/action/index.js): only runs `run()`. */
import { run } from './main';

void run();
