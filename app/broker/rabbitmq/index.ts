export { RabbitRelayBroker, type RabbitRelayBrokerOptions } from './rabbit-relay-broker';
export { parseBrokerUrl, type StompAddress } from './broker-url';
