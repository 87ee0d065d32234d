<?php

//连接数据库
$conn=mysql_connect('localhost','root','');
mysql_query('use test',$conn);
mysql_query('set names utf8',$conn);

?>
