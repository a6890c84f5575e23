/** GET /api/users/{user}/sessions: a user may list their own sessions; a backend (scope push) anyone's. */
import type { RequestHandler } from 'express';
import { isServiceError, ServiceError } from '../errors';
import type { SessionDirectory } from '../presence/directory';
import { principalOf } from './passport';
import { userName } from './validation';

export function sessionsHandler(presence: SessionDirectory): RequestHandler {
  return async (req, res) => {
    const user = userName(req.params.user, 'the user in the URL');
    const caller = principalOf(req);
    if (caller.user !== user && !caller.scopes.includes('push')) {
      throw new ServiceError('forbidden', "listing another user's sessions needs a token with scope 'push'");
    }
    let sessions;
    try {
      sessions = await presence.list(user);
    } catch (err: unknown) {
      // The directory's own refusals say what went wrong; anything else is the broker not answering.
      if (isServiceError(err) && err.code !== 'internal') throw err;
      throw new ServiceError('broker_unavailable', 'the session list could not be read from the broker', {
        cause: err,
      });
    }
    res.json({ user, sessions });
  };
}
