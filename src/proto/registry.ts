import { createRequire } from 'node:module';
import { messageTypes, type MessageFns } from '../gen/registry.js';

export type { MessageFns };

const TYPE_URL_PREFIX = 'type.googleapis.com/';

export interface FieldSchema {
  json: string;
  kind: string;
  type?: string;
  repeated: boolean;
}
export interface MessageSchema {
  fields: Record<string, FieldSchema>;
  mapEntry?: boolean;
}
interface Schema {
  messages: Record<string, MessageSchema>;
  enums: Record<string, string[]>;
}

const schema: Schema = createRequire(import.meta.url)('../gen/schema.json');

export function typeUrlOf(typeName: string): string {
  return TYPE_URL_PREFIX + typeName;
}

/** The message name behind a type URL; any host part before the last '/' is accepted, as protobuf does. */
export function typeNameOf(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/');
  return slash < 0 ? typeUrl : typeUrl.slice(slash + 1);
}

export function messageFns(typeName: string): MessageFns | undefined {
  return messageTypes.get(typeName);
}

export function messageSchema(typeName: string): MessageSchema | undefined {
  return schema.messages[typeName];
}

export function enumValues(typeName: string): readonly string[] | undefined {
  return schema.enums[typeName];
}
