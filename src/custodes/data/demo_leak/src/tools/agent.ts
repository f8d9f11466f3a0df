// A stand-in for a leaked codebase: the demo indexes this folder as the `demo-leak` collection.
// It was written for the custodes demo and is not anybody's proprietary code.

export interface ToolCall {
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface ToolResult {
  callId: string;
  output: string;
  isError: boolean;
}

type ToolHandler = (input: Record<string, unknown>, signal: AbortSignal) => Promise<string>;

export class ToolRunner {
  private readonly handlers = new Map<string, ToolHandler>();
  private readonly maxConcurrent: number;
  private active = 0;

  constructor(maxConcurrent = 4) {
    this.maxConcurrent = maxConcurrent;
  }

  register(name: string, handler: ToolHandler): void {
    if (this.handlers.has(name)) {
      throw new Error(`tool ${name} is already registered`);
    }
    this.handlers.set(name, handler);
  }

  async runAll(calls: ToolCall[], signal: AbortSignal): Promise<ToolResult[]> {
    const results: ToolResult[] = [];
    const queue = [...calls];
    const workers: Promise<void>[] = [];
    const next = async (): Promise<void> => {
      while (queue.length > 0 && !signal.aborted) {
        const call = queue.shift()!;
        this.active += 1;
        try {
          const handler = this.handlers.get(call.name);
          if (handler === undefined) {
            results.push({ callId: call.id, output: `unknown tool ${call.name}`, isError: true });
            continue;
          }
          const output = await handler(call.input, signal);
          results.push({ callId: call.id, output: output.slice(0, 30000), isError: false });
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          results.push({ callId: call.id, output: message, isError: true });
        } finally {
          this.active -= 1;
        }
      }
    };
    for (let i = 0; i < Math.min(this.maxConcurrent, calls.length); i += 1) {
      workers.push(next());
    }
    await Promise.all(workers);
    return results.sort((a, b) => calls.findIndex((c) => c.id === a.callId) - calls.findIndex((c) => c.id === b.callId));
  }
}
