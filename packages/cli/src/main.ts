import { Command, CommanderError } from 'commander';
import { registerAnalytics } from './commands/analytics.js';
import { registerBudgets } from './commands/budgets.js';
import { registerCalls } from './commands/calls.js';
import { registerDemo } from './commands/demo.js';
import { registerGateway } from './commands/gateway.js';
import { registerKeys } from './commands/keys.js';
import { registerPrice } from './commands/price.js';
import { registerPrices } from './commands/prices.js';
import { registerRateLimits } from './commands/rate-limits.js';
import { registerSpend } from './commands/spend.js';
import { registerStart } from './commands/start.js';
import { registerUseCases } from './commands/use-cases.js';
import { printError } from './errors.js';

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const program = new Command('tally')
    .description('Tally: what your AI costs and what it earns.')
    .option('--debug', 'print stack traces')
    .option('-c, --config <file>', 'config file (default: tally.config.json or .yaml)')
    .exitOverride()
    .showHelpAfterError();
  registerStart(program);
  registerDemo(program);
  registerGateway(program);
  registerKeys(program);
  registerCalls(program);
  registerSpend(program);
  registerBudgets(program);
  registerRateLimits(program);
  registerPrice(program);
  registerPrices(program);
  registerUseCases(program);
  registerAnalytics(program);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    return printError(err, debug);
  }
}
