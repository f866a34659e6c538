/* commands.h — the subcommands of the multi-call binary. Each takes (argc, argv) with argv[0]
 * the command's display name ("lora-train") and returns the exit status. */
#ifndef COMMANDS_H
#define COMMANDS_H

int cmd_pretrain(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
