/**
 * The handlers this service ships with: the demo page uses both, and they show how to write more.
 */
import type { AppRouter } from './app-router';

export function registerBuiltInHandlers(router: AppRouter): void {
  // /app/echo: the sender gets its own message back on /user/queue/echo (every one of its sessions).
  router.add('echo', async (msg, ctx) => {
    await ctx.replyToUser('/queue/echo', msg.body, contentType(msg.headers));
  });

  // /app/chat/{room}: republished to /topic/chat.{room} with the sender's verified user name, so a
  // client cannot pretend to be someone else by setting the header itself.
  router.add('chat/{room}', async (msg, ctx) => {
    await ctx.publish({ kind: 'topic', name: `chat.${msg.params.room}` }, msg.body, {
      ...contentType(msg.headers),
      sender: msg.user,
    });
  });
}

function contentType(headers: Record<string, string>): Record<string, string> {
  return headers['content-type'] ? { 'content-type': headers['content-type'] } : {};
}
