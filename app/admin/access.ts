/**
 * Who may see the cluster view. It shows every instance, user count and rate of the cluster, so it
 * is off in production unless ADMIN_ENABLED=true says otherwise, and it always needs a token whose
 * scope includes `admin`. While off, the page and the call answer 404 as if absent: an instance does
 * not advertise what it will not serve (the API description leaves the call out as well).
 */
import type { RequestHandler } from 'express';
import type { Settings } from '../../config/settings';
import { ServiceError } from '../errors';

export const ADMIN_SCOPE = 'admin';

export function adminEnabled(settings: Pick<Settings, 'adminEnabled' | 'nodeEnv'>): boolean {
  if (settings.adminEnabled === 'auto') return settings.nodeEnv !== 'production';
  return settings.adminEnabled === 'true';
}

/** Lets requests on while the view is on; answers 404 `not_found` saying how to turn it on otherwise. */
export function adminGate(settings: Pick<Settings, 'adminEnabled' | 'nodeEnv'>): RequestHandler {
  const enabled = adminEnabled(settings);
  return (_req, _res, next) => {
    if (enabled) {
      next();
      return;
    }
    next(
      new ServiceError(
        'not_found',
        settings.adminEnabled === 'false'
          ? 'the cluster view is off (ADMIN_ENABLED=false)'
          : 'the cluster view is off with NODE_ENV=production unless ADMIN_ENABLED=true',
      ),
    );
  };
}
