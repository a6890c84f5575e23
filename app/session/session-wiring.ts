/**
 * What every session of an instance shares, built in one place (server.ts at start; the command
 * table's unit tests the same way), and what a new connection gets: a StompSession, or a close
 * while the instance drains.
 */
import { deliverySeam } from '../delivery/delivery-seam';
import { AppRouter } from '../messaging/app-router';
import { registerBuiltInHandlers } from '../messaging/handlers';
import type { ClientSocket } from '../transport/transport';
import { ExpiryClock } from './expiry-clock';
import type { SessionContext } from './session-context';
import { SessionRegistry } from './session-registry';
import { StompSession } from './stomp-session';

/**
 * The shared parts a caller already has; the delivery seam, the /app router, the registry and the
 * expiry clock are made here.
 */
export type SessionDeps = Omit<SessionContext, 'deliveries' | 'appRouter' | 'registry' | 'expiry'>;

export interface SessionWiring {
  readonly ctx: SessionContext;
  /** For every transport's new connection. */
  onConnection(socket: ClientSocket): void;
}

export function sessionWiring(deps: SessionDeps): SessionWiring {
  const deliveries = deliverySeam(deps.inbox, deps.broker);
  const appRouter = new AppRouter(deliveries);
  registerBuiltInHandlers(appRouter);
  // /app routes no handler claims go to backend services, where the broker reaches some.
  const { forwardToBackend } = deps.broker;
  if (forwardToBackend) appRouter.fallback((message) => forwardToBackend(message));
  const ctx: SessionContext = {
    ...deps,
    deliveries,
    appRouter,
    registry: new SessionRegistry(deps.presence, deps.metrics),
    expiry: new ExpiryClock(),
  };
  return {
    ctx,
    onConnection(socket) {
      if (ctx.isDraining()) {
        socket.close();
        return;
      }
      new StompSession(socket, ctx);
    },
  };
}
