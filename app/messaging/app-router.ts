/**
 * `/app/<route>` messages go to handlers registered in code, the way Spring's @MessageMapping does:
 * a route pattern with `{param}` segments, and a context through which a handler can reply to the
 * sending user (like @SendToUser) or publish anywhere (like @SendTo). A route no handler claims
 * goes to the fallback, if one is set (server.ts sets the AMQP backend bridge there when it relays
 * to RabbitMQ); without one, dispatch() returns false and the caller answers `no_route`.
 */
import { randomUUID } from 'node:crypto';
import type { BackendMessage, OutgoingMessage, PublishReceipt } from '../broker/broker';
import { parseUserPushDestination, type MessageTarget } from '../destinations/destination';

/** An /app message as an in-process handler gets it: what a backend would get, and the route's params. */
export interface AppMessage extends BackendMessage {
  params: Record<string, string>;
}

export interface AppContext {
  /** Sends to every session of the sending user subscribed to `/user<path>` (path: `/queue/echo`). */
  replyToUser(path: string, body: Buffer | string, headers?: Record<string, string>): Promise<PublishReceipt>;
  publish(
    target: MessageTarget,
    body: Buffer | string,
    headers?: Record<string, string>,
  ): Promise<PublishReceipt>;
}

export type AppHandler = (message: AppMessage, context: AppContext) => Promise<void>;

/** Where handlers publish: the delivery seam (delivery/policies.ts), so a reply to a durable destination is kept. */
export interface AppPublisher {
  publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt>;
}

interface Route {
  pattern: RegExp;
  names: string[];
  handler: AppHandler;
}

function message(body: Buffer | string, headers: Record<string, string>): OutgoingMessage {
  return { id: randomUUID(), headers, body: Buffer.isBuffer(body) ? body : Buffer.from(body) };
}

export class AppRouter {
  private readonly routes: Route[] = [];
  private fallbackHandler: AppHandler | undefined;

  constructor(private readonly publisher: AppPublisher) {}

  /** `pattern` like `echo` or `chat/{room}`; a parameter matches one route segment. */
  add(pattern: string, handler: AppHandler): this {
    const names: string[] = [];
    const source = pattern
      .split('/')
      .map((segment) => {
        const param = /^\{(\w+)\}$/.exec(segment);
        if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(param[1]);
        return '([^/]+)';
      })
      .join('/');
    this.routes.push({ pattern: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  /** Handles every route no pattern claims (with empty `params`). One at most: a second replaces it. */
  fallback(handler: AppHandler): this {
    this.fallbackHandler = handler;
    return this;
  }

  /** Runs the first matching handler, else the fallback; false when neither exists. */
  async dispatch(request: Omit<AppMessage, 'params'>): Promise<boolean> {
    for (const route of this.routes) {
      const m = route.pattern.exec(request.route);
      if (!m) continue;
      const params = Object.fromEntries(route.names.map((name, i) => [name, m[i + 1]]));
      await route.handler({ ...request, params }, this.context(request.user));
      return true;
    }
    if (!this.fallbackHandler) return false;
    await this.fallbackHandler({ ...request, params: {} }, this.context(request.user));
    return true;
  }

  private context(user: string): AppContext {
    return {
      replyToUser: (path, body, headers = {}) =>
        this.publisher.publish(parseUserPushDestination(path, user), message(body, headers)),
      publish: (target, body, headers = {}) => this.publisher.publish(target, message(body, headers)),
    };
  }
}
