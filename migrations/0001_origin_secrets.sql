CREATE TABLE `origin_secrets` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`scope_type` text NOT NULL,
	`scope_id` text DEFAULT '' NOT NULL,
	`version` integer NOT NULL,
	`ciphertext` text NOT NULL,
	`iv` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `origin_secrets_scope_idx` ON `origin_secrets` (`name`,`scope_type`,`scope_id`);--> statement-breakpoint
CREATE INDEX `origin_secrets_name_idx` ON `origin_secrets` (`name`);