/**
 * The service's delivery seam, composed once for everything that publishes or subscribes: the
 * durable policy for INBOX_DESTINATIONS, best effort for the rest (policies.ts). Sessions and /app
 * handlers (session-wiring.ts) and the REST pushes (rest/api.ts) get the same composition, so a
 * destination is served by the same policy whichever way a message comes in.
 */
import type { Broker } from '../broker/broker';
import type { Inbox } from '../inbox/inbox';
import { durableDelivery } from './durable-delivery';
import { bestEffortDelivery, DeliveryPolicies } from './policies';

export function deliverySeam(inbox: Inbox, broker: Broker): DeliveryPolicies {
  return new DeliveryPolicies([durableDelivery(inbox, broker)], bestEffortDelivery(broker));
}
