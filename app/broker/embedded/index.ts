export { EmbeddedBroker, EMBEDDED_BROKER_DEFAULTS, type EmbeddedBrokerOptions } from './embedded-broker';
